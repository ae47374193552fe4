"""Migration 0002 on a database that 0001 built and clerk-sync has been writing to.

A deployment upgrades with its data in place: the users keep their rows and get the ordering
key the new code compares (``sync_version``), the tombstones keep refusing resurrections under
their new key ``(kind, id)``, and the log learns which user each stored body names
(``events.user_id``), so a later ``user.deleted`` erases bodies received before the upgrade.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, select

from clerk_sync import SchemaError, Status
from clerk_sync.devtools import (
    deleted_user_event,
    encode,
    envelope,
    membership_object,
    new_id,
    new_msg_id,
    organization_object,
    session_object,
    user_event,
    user_object,
)
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.store import ensure_schema, migrate, schema_state
from tests.helpers.tables import metadata
from tests.store.test_migrations import drift

T0 = 1_700_000_000_000
ADA = "user_2vX11zP8kQm3TbR6wYcN0dLe5Hs"
BOB = "user_2vX22bObBoBbObBoBbObBoBbObB"
CAROL = "user_2vX33cArOlCaRoLcArOlCaRoLcA"
"""Deleted before the upgrade: only her tombstone is left."""


def _upgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), revision)


def _downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), revision)


def _reflect(conn: Connection, name: str) -> Table:
    """The table as the database has it now (0001's shape, before the upgrade)."""
    return Table(name, MetaData(), autoload_with=conn)


def _user(user_id: str, email: str, updated_at: int) -> dict[str, Any]:
    return user_object(
        user_id=user_id,
        email=email,
        first_name=email.split("@")[0].title(),
        created_at=T0,
        updated_at=updated_at,
    )


def _user_row(user: dict[str, Any]) -> dict[str, Any]:
    """A users row as clerk-sync 0001 wrote it."""
    return {
        "id": user["id"],
        "email": user["email_addresses"][-1]["email_address"],
        "phone_number": None,
        "external_id": None,
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "username": None,
        "image_url": user["image_url"],
        "public_metadata": {"plan": "pro"},
        "unsafe_metadata": {},
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
        "last_sign_in_at": None,
        "banned": False,
        "locked": False,
        "data": user,
        "synced_at": user["updated_at"] + 3,
    }


def _log_row(
    n: int, event_type: str | None, subject: str | None, body: bytes | None, status: str
) -> dict[str, Any]:
    """An events row as clerk-sync 0001 wrote it (no ``user_id`` yet)."""
    return {
        "svix_id": f"msg_before_upgrade_{n:02d}",
        "type": event_type,
        "subject_id": subject,
        "event_timestamp": T0 + n,
        "received_at": T0 + n,
        "last_received_at": T0 + n,
        "delivery_count": 1,
        "status": status,
        "error": "payload_not_json: the body is not JSON" if status == "failed" else None,
        "payload": None if body is None else body.decode(),
    }


def _seed_0001(engine: Engine) -> dict[str, Any]:
    """Rows shaped like 0001's, written straight into its tables; returns what was written
    and, for every svix id, the user its body names (what the backfill must find)."""
    ada, bob = _user(ADA, "ada@example.com", T0 + 5), _user(BOB, "bob@example.com", T0 + 7)
    acme = organization_object(name="Acme", created_by=ADA, created_at=T0, updated_at=T0)
    session = session_object(user=ada, created_at=T0 + 1)
    email = {
        "object": "email",
        "id": new_id("ema"),
        "slug": "verification_code",
        "to_email_address": "bob@example.com",
        "user_id": BOB,
        "status": "queued",
        "subject": "424242 is your verification code",
        "body_plain": "424242",
    }
    membership = membership_object(organization=acme, user=bob, created_at=T0 + 2)
    logged: list[tuple[str | None, str | None, bytes | None, str, str | None]] = [
        # (type, subject, body, status, the user the body names)
        ("user.created", ADA, encode(user_event("user.created", ada)), "processed", ADA),
        ("user.created", BOB, encode(user_event("user.created", bob)), "processed", BOB),
        ("user.created", CAROL, None, "processed", CAROL),  # erased when she was deleted
        ("user.deleted", CAROL, encode(deleted_user_event(CAROL)), "processed", CAROL),
        (
            "session.created",
            session["id"],
            encode(envelope("session.created", session)),
            "ignored",
            ADA,
        ),
        ("email.created", email["id"], encode(envelope("email.created", email)), "ignored", BOB),
        (
            "organization.created",
            acme["id"],
            encode(envelope("organization.created", acme)),
            "ignored",
            ADA,
        ),
        (
            "organizationMembership.created",
            membership["id"],
            encode(envelope("organizationMembership.created", membership)),
            "ignored",
            BOB,
        ),
        (None, None, b"<html>502 Bad Gateway</html>", "failed", None),
        (
            "session.created",
            "sess_x",
            b'{"type": "session.created", "data": ["odd"]}',
            "failed",
            None,
        ),
        ("session.removed", "sess_erased", None, "ignored", None),
    ]
    with engine.begin() as conn:
        users, tombstones, events = (_reflect(conn, n) for n in ("users", "tombstones", "events"))
        conn.execute(users.insert(), [_user_row(ada), _user_row(bob)])
        conn.execute(tombstones.insert(), [{"id": CAROL, "kind": "user", "deleted_at": T0 + 4}])
        conn.execute(
            events.insert(),
            [_log_row(n, *entry[:4]) for n, entry in enumerate(logged)],
        )
    named = {f"msg_before_upgrade_{n:02d}": entry[4] for n, entry in enumerate(logged)}
    return {"ada": ada, "bob": bob, "acme": acme, "session": session, "named": named}


def _receive(receiver: Receiver, event: dict[str, Any]) -> Status:
    return receiver.receive(Delivery(new_msg_id(), encode(event))).status


def test_0002_keeps_the_data_0001_holds(empty_engine: Engine) -> None:
    engine = empty_engine
    _upgrade(engine, "0001")
    assert schema_state(engine) == "outdated"
    with pytest.raises(SchemaError, match="behind"):
        ensure_schema(engine)
    seeded = _seed_0001(engine)
    with engine.connect() as conn:
        before = {r.svix_id: r for r in conn.execute(select(_reflect(conn, "events")))}

    _upgrade(engine, "head")

    assert schema_state(engine) == "current"
    assert drift(engine) == []  # the upgraded schema is the models', as a fresh one is
    existing = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.tables.values()} <= existing
    users_t, tombstones_t, events_t = (
        metadata.tables[n] for n in ("users", "tombstones", "events")
    )
    with engine.connect() as conn:
        users = {r.id: r for r in conn.execute(select(users_t))}
        tombstones = conn.execute(select(tombstones_t)).all()
        events = {r.svix_id: r for r in conn.execute(select(events_t))}
        pk = inspect(conn).get_pk_constraint("tombstones")

    # Users: every row and column kept, and the ordering key is that of an update.
    assert set(users) == {ADA, BOB}
    for user in (seeded["ada"], seeded["bob"]):
        row = users[user["id"]]
        assert row.sync_version == user["updated_at"] * 4 + 1
        assert (row.email, row.updated_at, row.public_metadata) == (
            user["email_addresses"][-1]["email_address"],
            user["updated_at"],
            {"plan": "pro"},
        )
        assert row.data == user

    # Tombstones: kept, keyed by (kind, id).
    assert [(t.kind, t.id, t.deleted_at) for t in tombstones] == [("user", CAROL, T0 + 4)]
    assert pk["constrained_columns"] == ["kind", "id"]

    # The log: nothing lost or rewritten, and each row names the user its body is about.
    assert set(events) == set(before)
    for svix_id, old in before.items():
        new = events[svix_id]
        assert (new.seq, new.type, new.subject_id, new.status, new.payload) == (
            old.seq,
            old.type,
            old.subject_id,
            old.status,
            old.payload,
        ), svix_id
    assert {svix_id: row.user_id for svix_id, row in events.items()} == seeded["named"]

    # Deliveries after the upgrade go through the receiver against the migrated rows.
    receiver = Receiver(engine)
    ada = seeded["ada"]
    same = {**ada, "first_name": "Same millisecond"}
    assert _receive(receiver, user_event("user.updated", same)) == Status.STALE
    newer = {**ada, "first_name": "Augusta", "updated_at": ada["updated_at"] + 1}
    assert _receive(receiver, user_event("user.updated", newer)) == Status.PROCESSED
    back = _user(CAROL, "carol@example.com", T0 + 99)
    assert _receive(receiver, user_event("user.created", back)) == Status.STALE  # tombstoned
    globex = organization_object(name="Globex", created_at=T0 + 50, updated_at=T0 + 50)
    joined = membership_object(organization=globex, user=seeded["bob"], created_at=T0 + 51)
    event = envelope("organizationMembership.created", joined, joined["updated_at"])
    assert _receive(receiver, event) == Status.PROCESSED
    assert _receive(receiver, deleted_user_event(ADA)) == Status.PROCESSED

    with engine.connect() as conn:
        users = {r.id: r for r in conn.execute(select(users_t))}
        memberships = conn.execute(select(metadata.tables["organization_memberships"])).all()
        organizations = conn.execute(select(metadata.tables["organizations"].c.id)).scalars()
        events = {r.svix_id: r for r in conn.execute(select(events_t))}
    assert set(users) == {BOB}
    assert [(m.organization_id, m.user_id) for m in memberships] == [(globex["id"], BOB)]
    assert set(organizations) == {globex["id"]}
    # Ada's delete erased the bodies that named her, those received before the upgrade too.
    for svix_id, user_id in seeded["named"].items():
        if user_id == ADA:
            assert events[svix_id].payload is None, svix_id
        elif before[svix_id].payload is not None:
            assert events[svix_id].payload == before[svix_id].payload, svix_id
    assert orjson.loads(events["msg_before_upgrade_05"].payload)["data"]["user_id"] == BOB


def test_0002_downgrades_to_0001_and_upgrades_again(empty_engine: Engine) -> None:
    engine = empty_engine
    _upgrade(engine, "head")
    receiver = Receiver(engine)
    ada = _user(ADA, "ada@example.com", T0 + 5)
    acme = organization_object(name="Acme", created_by=ADA, created_at=T0, updated_at=T0)
    session = session_object(user=ada, created_at=T0 + 6)
    for event in (
        user_event("user.created", ada),
        envelope("organization.created", acme, T0),
        envelope("organizationMembership.created", membership_object(organization=acme, user=ada)),
        envelope("session.created", session, session["updated_at"]),
        deleted_user_event(CAROL, timestamp=T0 + 7),
    ):
        assert _receive(receiver, event) == Status.PROCESSED

    _downgrade(engine, "0001")

    assert schema_state(engine) == "outdated"
    with engine.connect() as conn:
        inspector = inspect(conn)
        assert set(inspector.get_table_names()) == {
            "users",
            "events",
            "tombstones",
            migrate.VERSION_TABLE,
        }
        assert "sync_version" not in {c["name"] for c in inspector.get_columns("users")}
        assert "user_id" not in {c["name"] for c in inspector.get_columns("events")}
        assert inspector.get_pk_constraint("tombstones")["constrained_columns"] == ["id"]
        assert conn.execute(select(_reflect(conn, "users").c.id)).scalars().all() == [ADA]
        assert conn.execute(select(_reflect(conn, "tombstones").c.id)).scalars().all() == [CAROL]
        assert len(conn.execute(select(_reflect(conn, "events"))).all()) == 5

    _upgrade(engine, "head")

    assert schema_state(engine) == "current"
    assert drift(engine) == []
    with engine.connect() as conn:
        row = conn.execute(select(metadata.tables["users"])).one()
        log = metadata.tables["events"]
        logged = conn.execute(select(log.c.type, log.c.user_id).order_by(log.c.seq)).all()
    assert (row.id, row.sync_version) == (ADA, ada["updated_at"] * 4 + 1)
    assert dict(logged) == {
        "user.created": ADA,
        "organization.created": ADA,  # its creator
        "organizationMembership.created": ADA,
        "session.created": ADA,
        "user.deleted": CAROL,
    }
    assert _receive(receiver, user_event("user.created", _user(CAROL, "c@x.io", T0 + 9))) == (
        Status.STALE
    )
    assert _receive(receiver, deleted_user_event(ADA)) == Status.PROCESSED
    with engine.connect() as conn:
        erased = conn.execute(
            select(log.c.type, log.c.payload.is_(None)).where(log.c.user_id == ADA)
        ).all()
    # Ada's delete erased every body that named her, those logged before the round trip too.
    before_delete = [(event_type, True) for event_type, user_id in logged if user_id == ADA]
    assert sorted(erased) == sorted([*before_delete, ("user.deleted", True)])
