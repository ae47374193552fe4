"""The expected end state of a Clerk history, computed without clerk-sync, and the actual one.

The rules, as the README and ``docs/entities.md`` state them, written here independently of
``src/`` for users, organizations, memberships, invitations and sessions:

* **Version.** An upsert's version is ``(data.updated_at, rank of its action)``, compared
  lexicographically: ``created`` 0, ``updated`` and ``pending`` 1, anything else (``ended``,
  ``removed``, ``revoked``, ``accepted``) 2. Each object's row is its greatest version.
* **Status.** A session's ``status`` column is its action's (``pending``, ``ended``,
  ``removed``, ``revoked``), an invitation's too (``accepted``, ``revoked``); a ``.created``
  keeps ``data.status``.
* **Deletes win.** Any ``*.deleted`` of an object, in any order: it is absent and tombstoned
  (``tombstones``: kind, id).
* **Parents.** A row whose parent is tombstoned is absent, and tombstoned itself (so an older
  copy that does not name the parent yet stays out): a membership goes with
  ``data.organization.id`` and ``data.public_user_data.user_id``, an invitation with
  ``organization_id`` and ``user_id``, a session with ``user_id``. A parent never seen does not
  matter. (Clerk only ever adds a parent to a later version — an invitation gains its
  accepter — so "its newest version names a deleted parent" is the whole rule.)
* **Scrubs.** An invitation whose inviter (``inviter_id``) is a deleted user keeps its row
  without ``data.public_inviter_data`` (the inviter's name and e-mail).
* **Embedded copies.** The organization inside a membership payload and the full user inside a
  session payload are an ``.updated`` of that object (rank 1) — only when they carry their own
  ``updated_at``. A tombstoned object is never recreated.
* **Erasure.** A delivery's body names one user: a user event's own user, a session's or
  membership's user, an invitation's accepter (else its inviter), an organization's creator.
  The body is stored verbatim unless that user is deleted; then it is erased (``payload``
  NULL).
* Other event types change nothing; a svix id delivered twice is applied once.

Delivery order, duplicates and batching must not matter, so the model applies the history as a
set. Tests compare ``actual == expected``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, select

from tests.helpers.tables import (
    invitations_table,
    memberships_table,
    organizations_table,
    sessions_table,
    tombstones_table,
    users_table,
)

Event = Mapping[str, Any]
"""A Clerk event envelope as a dict: ``{"type": ..., "data": {...}, ...}``."""
Key = tuple[str, str]
"""``(kind, id)`` of one object, ``kind`` as in the tombstones table."""
Version = tuple[int, int]

USER, ORGANIZATION = "user", "organization"
MEMBERSHIP, INVITATION, SESSION = "organization_membership", "organization_invitation", "session"

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
"""Every ``users`` column except ``synced_at`` and ``sync_version`` (not functions of the
history's objects)."""


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Rule:
    """What the model knows of one kind: its events, columns, parents and embedded objects."""

    kind: str
    prefix: str
    """Event types are ``<prefix>.<action>``."""
    upserts: frozenset[str]
    deletes: frozenset[str]
    columns: tuple[str, ...]
    """The columns compared (``id`` is the key)."""
    row: Callable[[Mapping[str, Any], str], dict[str, Any]]
    """``(object, action)`` → the compared columns' values."""
    parents: Callable[[Mapping[str, Any]], list[Key]] = lambda _obj: []
    embedded: Callable[[Mapping[str, Any]], list[tuple[str, Any]]] = lambda _obj: []
    scrubs: Callable[[Mapping[str, Any]], list[tuple[Key, str]]] = lambda _obj: []
    """``(object, key of data)``: the key goes from the row once that object is deleted."""


def _primary(wanted: Any, items: Any, attr: str) -> Any:
    """Clerk names the primary address by id; it is not always the first one."""
    if wanted is None or not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get("id") == wanted:
            return item.get(attr)
    return None


def expected_row(user: Mapping[str, Any], _action: str = "updated") -> dict[str, Any]:
    """The ``users`` row a Clerk User object must produce, column by column."""
    return {
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


def _status(obj: Mapping[str, Any], action: str, implied: frozenset[str], default: str) -> Any:
    return action if action in implied else obj.get("status", default)


def _membership_row(m: Mapping[str, Any], _action: str) -> dict[str, Any]:
    return {
        "data": dict(m),
        "organization_id": _get(m.get("organization"), "id"),
        "user_id": _get(m.get("public_user_data"), "user_id"),
    }


def _invitation_row(inv: Mapping[str, Any], action: str) -> dict[str, Any]:
    return {
        "data": dict(inv),
        "status": _status(inv, action, frozenset({"accepted", "revoked"}), "pending"),
        "organization_id": inv.get("organization_id"),
        "user_id": inv.get("user_id"),
    }


def _session_row(s: Mapping[str, Any], action: str) -> dict[str, Any]:
    implied = frozenset({"pending", "ended", "removed", "revoked"})
    status = _status(s, action, implied, "active")
    return {"data": dict(s), "status": status, "user_id": s.get("user_id")}


def _refs(*pairs: tuple[str, Any]) -> list[Key]:
    return [(kind, value) for kind, value in pairs if isinstance(value, str)]


RULES = (
    Rule(
        USER,
        "user",
        frozenset({"created", "updated"}),
        frozenset({"deleted"}),
        MODEL_COLUMNS[1:],
        expected_row,
    ),
    Rule(
        ORGANIZATION,
        "organization",
        frozenset({"created", "updated"}),
        frozenset({"deleted"}),
        ("data",),
        lambda org, _action: {"data": dict(org)},
    ),
    Rule(
        MEMBERSHIP,
        "organizationMembership",
        frozenset({"created", "updated"}),
        frozenset({"deleted"}),
        ("data", "organization_id", "user_id"),
        _membership_row,
        parents=lambda m: _refs(
            (ORGANIZATION, _get(m.get("organization"), "id")),
            (USER, _get(m.get("public_user_data"), "user_id")),
        ),
        embedded=lambda m: [(ORGANIZATION, m.get("organization"))],
    ),
    Rule(
        INVITATION,
        "organizationInvitation",
        frozenset({"created", "accepted", "revoked"}),
        frozenset(),
        ("data", "status", "organization_id", "user_id"),
        _invitation_row,
        parents=lambda inv: _refs(
            (ORGANIZATION, inv.get("organization_id")), (USER, inv.get("user_id"))
        ),
        scrubs=lambda inv: [
            (key, "public_inviter_data") for key in _refs((USER, inv.get("inviter_id")))
        ],
    ),
    Rule(
        SESSION,
        "session",
        frozenset({"created", "pending", "ended", "removed", "revoked"}),
        frozenset(),
        ("data", "status", "user_id"),
        _session_row,
        parents=lambda s: _refs((USER, s.get("user_id"))),
        embedded=lambda s: [(USER, s.get("user"))],
    ),
)
RULE = {rule.kind: rule for rule in RULES}
_BY_PREFIX = {rule.prefix: rule for rule in RULES}
TABLES: dict[str, Table] = {
    USER: users_table,
    ORGANIZATION: organizations_table,
    MEMBERSHIP: memberships_table,
    INVITATION: invitations_table,
    SESSION: sessions_table,
}
UPSERT_TYPES = frozenset(f"{r.prefix}.{a}" for r in RULES for a in r.upserts)
DELETE_TYPES = frozenset(f"{r.prefix}.{a}" for r in RULES for a in r.deletes)


def rank(action: str) -> int:
    return {"created": 0, "updated": 1, "pending": 1}.get(action, 2)


@dataclass(frozen=True)
class Write:
    """One object an event writes: its own, or an embedded copy (``primary`` False)."""

    key: Key
    version: Version
    obj: Mapping[str, Any]
    action: str
    primary: bool

    def row(self) -> dict[str, Any]:
        return RULE[self.key[0]].row(self.obj, self.action)

    def parents(self) -> list[Key]:
        return RULE[self.key[0]].parents(self.obj)


@dataclass(frozen=True)
class Effects:
    """What one event means to the model: an object deleted, and the objects it writes."""

    deleted: Key | None = None
    writes: tuple[Write, ...] = ()


def effects(event: Event) -> Effects:
    """The model's reading of one event (nothing for types it does not know)."""
    prefix, _, action = str(event.get("type", "")).partition(".")
    data = event.get("data")
    rule = _BY_PREFIX.get(prefix)
    if rule is None or not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        return Effects()
    deleted: Key | None = None
    writes: list[Write] = []
    if action in rule.deletes:
        deleted = (rule.kind, data["id"])
    elif action in rule.upserts:
        version = (data["updated_at"], rank(action))
        writes.append(Write((rule.kind, data["id"]), version, data, action, True))
    else:
        return Effects()
    for kind, obj in rule.embedded(data):
        # Only a copy that carries its own updated_at refreshes its object.
        if isinstance(_get(obj, "id"), str) and isinstance(_get(obj, "updated_at"), int):
            key = (kind, obj["id"])
            writes.append(Write(key, (obj["updated_at"], 1), obj, "updated", False))
    return Effects(deleted, tuple(writes))


def named_user(event: Event) -> str | None:
    """The user whose personal data a body holds (see the module docstring), if any."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        return None
    prefix = str(event.get("type", "")).partition(".")[0]
    candidates = {
        "user": data.get("id"),
        "session": data.get("user_id"),
        "organizationMembership": _get(data.get("public_user_data"), "user_id"),
        "organizationInvitation": data.get("user_id") or data.get("inviter_id"),
        "organization": data.get("created_by"),
    }
    value = candidates.get(prefix)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class State:
    """What the database holds: live rows by kind and id, and tombstoned ids by kind."""

    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tombstones: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return self.rows.get(USER, {})

    @property
    def deleted_users(self) -> frozenset[str]:
        return self.tombstones.get(USER, frozenset())


def empty_state() -> State:
    return State({kind: {} for kind in RULE}, {kind: frozenset() for kind in RULE})


def newest_writes(history: Iterable[Event]) -> dict[Key, list[Write]]:
    """Every object's writes of its greatest version (several when they tie)."""
    best: dict[Key, list[Write]] = {}
    for event in history:
        for w in effects(event).writes:
            held = best.get(w.key)
            if held is None or w.version > held[0].version:
                best[w.key] = [w]
            elif w.version == held[0].version:
                held.append(w)
    return best


def expected_state(history: Iterable[Event]) -> State:
    """Apply the rules to a history as a set: its order does not matter."""
    events = list(history)
    tombstones: dict[str, set[str]] = {kind: set() for kind in RULE}
    for event in events:
        deleted = effects(event).deleted
        if deleted is not None:
            tombstones[deleted[0]].add(deleted[1])
    rows: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in RULE}
    orphans: dict[str, set[str]] = {kind: set() for kind in RULE}
    for (kind, object_id), ties in newest_writes(events).items():
        row = ties[0].row()
        if any(w.row() != row for w in ties[1:]):
            raise ValueError(f"two different {kind} {object_id} share version {ties[0].version}")
        orphaned = any(parent_id in tombstones[parent] for parent, parent_id in ties[0].parents())
        gone = object_id in tombstones[kind] or orphaned
        if orphaned:
            orphans[kind].add(object_id)
        if not gone:
            for (other, other_id), key in RULE[kind].scrubs(ties[0].obj):
                if other_id in tombstones[other]:
                    row["data"] = {k: v for k, v in row["data"].items() if k != key}
            rows[kind][object_id] = row
    return State(rows, {kind: frozenset(ids | orphans[kind]) for kind, ids in tombstones.items()})


def tombstone_times(history: Iterable[Event]) -> dict[Key, frozenset[int]]:
    """Each tombstone's possible ``deleted_at``: an object deleted only by its own events is
    stamped with the earliest of them; one that went with a parent may carry that parent's
    time instead (which deletion reaches it first depends on delivery order, so the proofs
    accept any of them)."""
    events = list(history)
    own: dict[Key, set[int]] = {}
    for event in events:
        deleted = effects(event).deleted
        if deleted is not None:
            own.setdefault(deleted, set()).add(event_ms(event))
    times = {key: frozenset({min(at)}) for key, at in own.items()}
    for key, ties in newest_writes(events).items():
        parents = [times[p] for p in ties[0].parents() if p in times]
        if parents:
            times[key] = frozenset(
                own.get(key, set()).union(*parents) if key in own else frozenset().union(*parents)
            )
    return times


def event_ms(event: Event) -> int:
    """The envelope ``timestamp`` in ms (below 10^12 it was sent in seconds)."""
    at = int(event["timestamp"])
    return at * 1000 if at < 10**12 else at


def actual_state(engine: Engine) -> State:
    """Read the same shape back with SQLAlchemy Core, through a connection of its own."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    tombstones: dict[str, set[str]] = {kind: set() for kind in RULE}
    with engine.connect() as conn:
        for kind, rule in RULE.items():
            table = TABLES[kind]
            found = conn.execute(select(table.c.id, *[table.c[c] for c in rule.columns]))
            rows[kind] = {r["id"]: {c: r[c] for c in rule.columns} for r in found.mappings()}
        for kind, object_id in conn.execute(select(tombstones_table.c.kind, tombstones_table.c.id)):
            tombstones.setdefault(kind, set()).add(object_id)
    return State(rows, {kind: frozenset(ids) for kind, ids in tombstones.items()})


def differences(expected: State, actual: State, *, limit: int = 5) -> list[str]:
    """A few lines saying where two states differ (empty when they are equal)."""
    lines: list[str] = []
    for kind in sorted(expected.rows.keys() | actual.rows.keys()):
        want, got = expected.rows.get(kind, {}), actual.rows.get(kind, {})
        wrong = sorted(i for i in want.keys() | got.keys() if want.get(i) != got.get(i))
        if wrong:
            lines.append(f"{len(wrong)} {kind} rows differ, e.g. {wrong[0]}:")
            lines.append(f"  expected {want.get(wrong[0])}")
            lines.append(f"  actual   {got.get(wrong[0])}")
    for kind in sorted(expected.tombstones.keys() | actual.tombstones.keys()):
        want_t = expected.tombstones.get(kind, frozenset())
        got_t = actual.tombstones.get(kind, frozenset())
        if want_t != got_t:
            lines.append(
                f"{kind} tombstones: missing {sorted(want_t - got_t)[:limit]}, "
                f"extra {sorted(got_t - want_t)[:limit]}"
            )
    return lines
