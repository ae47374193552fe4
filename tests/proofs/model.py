"""The expected end state of a Clerk history, computed without clerk-sync, and the actual one.

The rules, as the README states them and independently of ``src/``:

* any ``user.deleted`` for a user → the user is absent and tombstoned, whatever the order;
* otherwise the ``user.created`` / ``user.updated`` with the greatest ``data.updated_at`` wins;
* other event types change nothing.

Delivery order, duplicates and batching must not matter, so the state of an in-order delivery of
the history *is* the expected state of every delivery of it. Tests compare ``actual == expected``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from tests.helpers.tables import tombstones_table, users_table

Event = Mapping[str, Any]
"""A Clerk event envelope as a dict: ``{"type": ..., "data": {...}, ...}``."""

MODEL_COLUMNS = (
    "id",
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "username",
    "image_url",
    "public_metadata",
    "unsafe_metadata",
    "created_at",
    "updated_at",
    "last_sign_in_at",
    "banned",
    "locked",
    "data",
)
"""Every ``users`` column except ``synced_at`` (write time, not a function of the history)."""

UPSERT_TYPES = frozenset({"user.created", "user.updated"})


@dataclass(frozen=True)
class State:
    """What the database holds about users: live rows by id, and tombstoned user ids."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: frozenset[str] = frozenset()


def _primary(wanted: Any, items: Any, attr: str) -> Any:
    """Clerk names the primary address by id; it is not always the first one."""
    if wanted is None or not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get("id") == wanted:
            return item.get(attr)
    return None


def expected_row(user: Mapping[str, Any]) -> dict[str, Any]:
    """The ``users`` row a Clerk User object must produce, column by column."""
    return {
        "id": user["id"],
        "email": _primary(
            user.get("primary_email_address_id"), user.get("email_addresses"), "email_address"
        ),
        "phone_number": _primary(
            user.get("primary_phone_number_id"), user.get("phone_numbers"), "phone_number"
        ),
        "external_id": user.get("external_id"),
        "first_name": user.get("first_name"),
        "last_name": user.get("last_name"),
        "username": user.get("username"),
        "image_url": user.get("image_url"),
        "public_metadata": user.get("public_metadata") or {},
        "unsafe_metadata": user.get("unsafe_metadata") or {},
        "created_at": user.get("created_at"),
        "updated_at": user["updated_at"],
        "last_sign_in_at": user.get("last_sign_in_at"),
        "banned": bool(user.get("banned", False)),
        "locked": bool(user.get("locked", False)),
        "data": dict(user),
    }


def expected_state(history: Iterable[Event]) -> State:
    """Apply the rules to a history in one pass; order within it does not matter."""
    latest: dict[str, Mapping[str, Any]] = {}
    deleted: set[str] = set()
    for event in history:
        kind, data = event.get("type"), event.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            continue
        user_id = data["id"]
        if kind == "user.deleted":
            deleted.add(user_id)
        elif kind in UPSERT_TYPES:
            held = latest.get(user_id)
            if held is not None and held["updated_at"] == data["updated_at"] and held != data:
                raise ValueError(f"two different versions of {user_id} share updated_at")
            if held is None or data["updated_at"] > held["updated_at"]:
                latest[user_id] = data
    users = {uid: expected_row(user) for uid, user in latest.items() if uid not in deleted}
    return State(users=users, deleted=frozenset(deleted))


def actual_state(engine: Engine) -> State:
    """Read the same shape back with SQLAlchemy Core, through a connection of its own."""
    columns = [users_table.c[name] for name in MODEL_COLUMNS]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns)).mappings().all()
        tombs = conn.execute(
            select(tombstones_table.c.id).where(tombstones_table.c.kind == "user")
        ).scalars()
        deleted = frozenset(tombs)
    return State(users={row["id"]: dict(row) for row in rows}, deleted=deleted)
