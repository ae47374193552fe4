"""What an entity kind declares, and the plan of writes a delivery about it becomes.

A kind is data, not code paths: its table's columns, the pydantic model that decodes its
objects, which event actions upsert and which delete, the status an action implies, the other
kinds it belongs to (``parents``) and the objects of other kinds embedded in its payloads. The
mechanisms that use these declarations — the versioned upsert, the tombstone, cascades, locks,
erasure, the batch statements — are written once, in ``store/writes.py`` and ``receiver.py``,
and never ask which kind they hold.

Ordering: every upsert carries one integer, its *version* — the object's ``updated_at`` (else
the envelope ``timestamp``, else the time it was received), in milliseconds, times 4, plus the
rank of its action (created 0, updated 1, a terminal action such as ``session.ended`` 2). A
stored row changes only for a strictly greater version, so two events stamped in the same
millisecond still converge to the same state in any order. Deletes carry no version: they
always win and leave a tombstone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import BigInteger, Integer, SmallInteger, String

from ..errors import InvalidPayload
from ..events import Envelope
from ..events.envelope import Millis, describe
from ..store.schema import ColumnsFactory

RANKS = {"created": 0, "updated": 1, "pending": 1}
"""Actions not listed rank 2: terminal states (ended, revoked, accepted, …) win ties."""
_RANK_SLOTS = 4


class ClerkObject(BaseModel):
    """Base of every kind's model: unknown keys ignored, new ones defaulted, frozen. Only what
    identity and ordering need is required."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=255)
    updated_at: Millis | None = None
    created_at: Millis | None = None


class DeletedObject(ClerkObject):
    """``data`` of ``*.deleted``: ``{deleted, id, object}`` (and sometimes more)."""

    deleted: bool = True
    object: str | None = None


Embedded = tuple[str, dict[str, Any]]
"""An object of another kind inside a payload: ``(kind name, the object)``."""


@dataclass(frozen=True)
class Kind:
    """One Clerk object kind that clerk-sync keeps a table of."""

    name: str
    """Tombstones' ``kind`` and the lock namespace, e.g. ``organization_membership``."""
    table: str
    """Table name before ``TABLE_PREFIX``, e.g. ``organization_memberships``."""
    events: str
    """The event-type prefix: ``organizationMembership`` for ``organizationMembership.created``."""
    model: type[ClerkObject]
    columns: ColumnsFactory
    """The queried columns (``id``, ``data``, ``sync_version``, ``synced_at`` are added)."""
    upserts: tuple[str, ...] = ("created", "updated")
    deletes: tuple[str, ...] = ("deleted",)
    implied_status: Mapping[str, str] = field(default_factory=dict)
    """Action → value of the ``status`` column it sets (``session.ended`` → ``ended``)."""
    parents: Mapping[str, str] = field(default_factory=dict)
    """Column → kind it refers to. A row goes with its parent (cascade), and is never written
    while its parent is tombstoned. The parent need not be known yet."""
    row: Callable[[Any], dict[str, Any]] | None = None
    """Model → queried column values; by default the model's attributes of the same names."""
    embedded: Callable[[dict[str, Any]], Iterable[Embedded]] = lambda _data: ()
    """Objects of other kinds inside ``data``, refreshed under their own version guard."""
    personal: bool = False
    """True for users: deleting one erases its personal data from every stored body."""
    scrubs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Column → (kind it refers to, key of ``data``): when that object is deleted, rows naming
    it here keep the row but lose that part of ``data`` (an invitation keeps its inviter's id
    but not the inviter's name and e-mail)."""
    fields: tuple[str, ...] = ()
    """The read model: keys of the API's JSON, in order (all columns but ``data`` by default)."""
    searched: tuple[str, ...] = ()
    """Columns a ``query`` search matches (a case-insensitive part of any)."""

    def event_types(self) -> list[str]:
        return [f"{self.events}.{action}" for action in (*self.upserts, *self.deletes)]

    def read_fields(self) -> tuple[str, ...]:
        """The keys of an object's JSON in the API and ``--json``."""
        return self.fields or ("id", *self.column_names(), "synced_at")

    def column_names(self) -> tuple[str, ...]:
        # ``columns`` builds new Column objects each call; this runs for every object decoded.
        found = _COLUMN_NAMES.get(self.name)
        if found is None:
            found = _COLUMN_NAMES[self.name] = tuple(c.name for c in self.columns())
        return found

    def values(self, obj: ClerkObject) -> dict[str, Any]:
        """The queried column values of a decoded object."""
        if self.row is not None:
            return self.row(obj)
        return {name: getattr(obj, name, None) for name in self.column_names()}


@dataclass(frozen=True, slots=True)
class Upsert:
    """Write ``row`` unless a newer version is stored or the id (or a parent) is tombstoned."""

    kind: Kind
    id: str
    version: int
    row: dict[str, Any]
    """Every column but ``synced_at``, JSON values still Python (serialized when written)."""
    primary: bool = True
    """False for an embedded object: its refusal does not make the delivery stale."""

    @property
    def updated_at(self) -> int:
        return self.version // _RANK_SLOTS


@dataclass(frozen=True, slots=True)
class Delete:
    """Tombstone ``id``, remove its row and its children's, erase personal data if any."""

    kind: Kind
    id: str
    deleted_at: int


Write = Upsert | Delete


@dataclass(frozen=True, slots=True)
class Plan:
    """What one delivery is to change, decided without I/O. The first write is the delivery's
    own; the others refresh embedded objects."""

    writes: tuple[Write, ...]

    @property
    def subject_id(self) -> str:
        return self.writes[0].id

    def lock_keys(self) -> set[str]:
        """Every object the plan touches, parents included: a membership locks its
        organization and its user, so it cannot race their deletes on another replica."""
        keys: set[str] = set()
        for w in self.writes:
            keys.add(f"{w.kind.name}:{w.id}")
            if isinstance(w, Upsert):
                for column, parent in w.kind.parents.items():
                    value = w.row.get(column)
                    if isinstance(value, str):
                        keys.add(f"{parent}:{value}")
        return keys


def version(updated_at: int | None, fallback_ms: int, action: str) -> int:
    """The ordering key of an upsert (see the module docstring)."""
    ms = updated_at if updated_at is not None else fallback_ms
    return ms * _RANK_SLOTS + RANKS.get(action, 2)


def decode(model: type[ClerkObject], data: dict[str, Any], where: str = "data") -> ClerkObject:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, prefix=where)) from None


def upsert(
    kind: Kind, data: dict[str, Any], action: str, fallback_ms: int, *, primary: bool = True
) -> Upsert:
    """The upsert of one object of ``kind`` (raises :class:`InvalidPayload` if it is unusable)."""
    obj = decode(kind.model, data)
    row = kind.values(obj)
    for name, limit in _lengths(kind).items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise InvalidPayload(
                f"The {kind.name}'s {name} is {len(value)} characters long; its column holds "
                f"at most {limit}, so it can never be stored."
            )
    for name, (low, high) in _ranges(kind).items():
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            raise InvalidPayload(
                f"The {kind.name}'s {name} is {value}; its column holds {low} to {high}, so it "
                "can never be stored."
            )
    if action in kind.implied_status:
        row["status"] = kind.implied_status[action]
    row["id"] = obj.id
    row["data"] = data
    v = version(obj.updated_at, fallback_ms, action)
    row["sync_version"] = v
    return Upsert(kind, obj.id, v, row, primary)


_LENGTHS: dict[str, dict[str, int]] = {}
_COLUMN_NAMES: dict[str, tuple[str, ...]] = {}


def _lengths(kind: Kind) -> dict[str, int]:
    """The queried columns that hold at most so many characters (PostgreSQL enforces it)."""
    found = _LENGTHS.get(kind.name)
    if found is None:
        found = _LENGTHS[kind.name] = {
            c.name: c.type.length
            for c in kind.columns()
            if isinstance(c.type, String) and c.type.length is not None
        }
    return found


_RANGES: dict[str, dict[str, tuple[int, int]]] = {}
_BITS = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))  # subclasses before Integer


def _ranges(kind: Kind) -> dict[str, tuple[int, int]]:
    """The integer columns and the values they hold: PostgreSQL refuses anything outside (an
    ``integer`` is 32 bits), SQLite past 64 bits. Refused on both alike."""
    found = _RANGES.get(kind.name)
    if found is None:
        found = _RANGES[kind.name] = {}
        for c in kind.columns():
            bits = next((b for t, b in _BITS if isinstance(c.type, t)), None)
            if bits is not None:
                found[c.name] = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return found


def plan(kind: Kind, envelope: Envelope, action: str, received_ms: int) -> Plan:
    """Decide a delivery of ``kind``'s event ``action``; pure."""
    when = envelope.timestamp_ms or received_ms
    data = envelope.data
    first: Write
    if action in kind.deletes:
        deleted = decode(DeletedObject, data)
        first = Delete(kind, deleted.id, when)
    else:
        first = upsert(kind, data, action, when)
    return Plan((first, *_embedded(kind, data, when)))


def _embedded(kind: Kind, data: dict[str, Any], when: int) -> list[Write]:
    from .registry import kind_named

    refreshes: list[Write] = []
    for kind_name, obj in kind.embedded(data):
        # Only a copy that carries its own version can be ordered against the real events.
        if not isinstance(obj.get("updated_at"), int):
            continue
        try:
            refreshes.append(upsert(kind_named(kind_name), obj, "updated", when, primary=False))
        except InvalidPayload:
            continue  # a partial embedded copy refreshes nothing; the delivery's own write stands
    return refreshes
