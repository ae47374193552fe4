"""The registry of entity kinds: which event types clerk-sync syncs, and the tables they need.

A kind is registered with :func:`register` when its module is imported (``entities/__init__``
imports them all). Names are checked then: a second kind for one event prefix or table, or a
parent that is not a kind, fails loudly at import instead of silently never matching.
"""

from __future__ import annotations

import re
from functools import cache

from ..store.schema import Naming, Tables, build_tables
from .kind import Kind

EVENT_NAME = re.compile(r"[a-z][A-Za-z]*\.[a-z][A-Za-z_]*")
_KINDS: dict[str, Kind] = {}
_ROUTES: dict[str, tuple[Kind, str]] = {}


def register(kind: Kind) -> Kind:
    """Add ``kind``; its event types must be new."""
    if kind.name in _KINDS or any(k.table == kind.table for k in _KINDS.values()):
        raise ValueError(f"entity kind {kind.name!r} (table {kind.table!r}) is already registered")
    for event_type in kind.event_types():
        if not EVENT_NAME.fullmatch(event_type):
            raise ValueError(f"{event_type!r} is not a Clerk event name like 'user.created'")
        if event_type in _ROUTES:
            raise ValueError(f"{event_type!r} already belongs to {_ROUTES[event_type][0].name!r}")
    for other in _KINDS.values():
        if other.events == kind.events:
            raise ValueError(f"event prefix {kind.events!r} already belongs to {other.name!r}")
    _KINDS[kind.name] = kind
    for event_type in kind.event_types():
        _ROUTES[event_type] = (kind, event_type.split(".", 1)[1])
    return kind


def check_parents() -> None:
    """Every parent a kind names is a registered kind (called once all are imported)."""
    for kind in _KINDS.values():
        for column, parent in kind.parents.items():
            if parent not in _KINDS:
                raise ValueError(f"{kind.name}.{column} refers to unknown kind {parent!r}")


def route(event_type: str) -> tuple[Kind, str] | None:
    """The kind an event type is about and its action (``created``, ``ended``, …)."""
    return _ROUTES.get(event_type)


def kind_named(name: str) -> Kind:
    return _KINDS[name]


def kinds() -> list[Kind]:
    return list(_KINDS.values())


def handled_types() -> list[str]:
    """Every event type that changes a table (the rest are recorded as ``ignored``)."""
    return sorted(_ROUTES)


def children(kind: Kind) -> list[tuple[Kind, str]]:
    """``(child kind, column)`` for every kind whose rows belong to ``kind``'s."""
    return _children(kind.name, len(_KINDS))


@cache
def _children(name: str, _registered: int) -> list[tuple[Kind, str]]:
    return [
        (child, column)
        for child in _KINDS.values()
        for column, parent in child.parents.items()
        if parent == name
    ]


def scrubbed_by(kind: Kind) -> list[tuple[Kind, str]]:
    """``(kind, column)`` for every kind whose rows name ``kind``'s objects in ``column`` and
    lose some personal data with them (:attr:`Kind.scrubs`)."""
    return _scrubbed_by(kind.name, len(_KINDS))


@cache
def _scrubbed_by(name: str, _registered: int) -> list[tuple[Kind, str]]:
    return [
        (other, column)
        for other in _KINDS.values()
        for column, (target, _) in other.scrubs.items()
        if target == name
    ]


@cache
def tables(prefix: str = "", schema: str | None = None) -> Tables:
    """The tables of one deployment (one object per naming, so statements compile once)."""
    return build_tables(
        Naming(prefix, schema), [(k.name, k.table, k.columns) for k in _KINDS.values()]
    )
