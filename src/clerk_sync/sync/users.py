"""Sync rules for users.

* ``user.created`` and ``user.updated`` are the same operation: an upsert that applies only if
  the payload's ``updated_at`` is newer than the stored one (Svix neither orders nor
  de-duplicates, so a retried ``user.created`` may land after a ``user.updated``). A
  ``user.updated`` for an unknown user creates it.
* ``user.deleted`` carries no version: the delete wins. It leaves a tombstone, runs the
  application's cleanup hooks, deletes the row (the database cascades to rows that reference it)
  and erases the stored bodies of that user's earlier deliveries.
* A tombstoned id is never written again; such deliveries are recorded as ``stale``.

The receiver holds the subject's lock for the whole transaction (:func:`writes.lock_keys`), so
these rules never race another replica's writes about the same user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ..events import Envelope, UserData, decode_deleted, decode_user
from ..store import writes
from .registry import Applied, ApplyContext, handles


@dataclass(frozen=True, slots=True)
class UpsertUser:
    subject_id: str
    updated_at: int
    values: dict[str, Any]

    def apply(self, conn: Connection, ctx: ApplyContext) -> Applied:
        if writes.upsert_user(conn, self.row(ctx.now_ms)):
            return Applied("processed")
        if writes.is_tombstoned(conn, self.subject_id):
            return self.refused(tombstoned=True, stored=None)
        return self.refused(tombstoned=False, stored=writes.stored_version(conn, self.subject_id))

    def row(self, now_ms: int) -> dict[str, Any]:
        """The parameters of :func:`writes.upsert_user`."""
        return {**self.values, "synced_at": now_ms}

    def refused(self, *, tombstoned: bool, stored: int | None) -> Applied:
        """Why an upsert that changed nothing is stale (the receiver's pipelined path asks the
        same two questions in one round trip)."""
        if tombstoned:
            return Applied("stale", "user was deleted; deletes win", erase_payload=True)
        return Applied(
            "stale", f"updated_at {self.updated_at} is not newer than the stored {stored}"
        )


@dataclass(frozen=True, slots=True)
class DeleteUser:
    subject_id: str
    deleted_at: int | None

    def apply(self, conn: Connection, ctx: ApplyContext) -> Applied:
        writes.add_tombstone(conn, self.subject_id, "user", self.deleted_at or ctx.now_ms)
        for hook in ctx.on_user_deleted:
            hook(conn, self.subject_id)
        writes.delete_user(conn, self.subject_id)
        writes.erase_payloads(conn, self.subject_id, keep_seq=ctx.seq)
        return Applied("processed")


def user_row(user: UserData, data: dict[str, Any]) -> dict[str, Any]:
    """The queried columns of the ``users`` table, plus the full object as sent (JSON columns
    serialized, as :func:`writes.upsert_user` takes them)."""
    return {
        "id": user.id,
        "email": user.primary_email,
        "phone_number": user.primary_phone,
        "external_id": user.external_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "image_url": user.image_url,
        "public_metadata": writes.json_text(user.public_metadata or {}),
        "unsafe_metadata": writes.json_text(user.unsafe_metadata or {}),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_sign_in_at": user.last_sign_in_at,
        "banned": user.banned,
        "locked": user.locked,
        "data": writes.json_text(data),
    }


@handles("user.created", "user.updated")
def upsert_user(envelope: Envelope) -> UpsertUser:
    user = decode_user(envelope.data)
    return UpsertUser(user.id, user.updated_at, user_row(user, envelope.data))


@handles("user.deleted")
def delete_user(envelope: Envelope) -> DeleteUser:
    deleted = decode_deleted(envelope.data)
    return DeleteUser(deleted.id, envelope.timestamp)
