"""Drift between the local copy and Clerk, and its repair through the receiver.

For each kind, the ids and ``updated_at`` stored here are compared with the objects Clerk lists:

* **missing** — in Clerk, not here (and not deleted here: a tombstoned id stays deleted);
* **extra** — here, gone from Clerk (a delete that never arrived);
* **stale** — Clerk's ``updated_at`` is newer than the stored one (an update that never arrived).

``--fix`` repairs it with synthetic deliveries (``source = backfill``) through
:meth:`Receiver.receive_batch`, the one path: a missing or stale object is upserted under the
version guard, an extra one deleted with a tombstone and the usual cascades — so a webhook
racing the repair still wins when it is newer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from .entities import Kind, kind_named
from .events import Source
from .receiver import Delivery, Outcome, Receiver
from .store import Tables

RECONCILED = {
    "users": "user",
    "organizations": "organization",
    "memberships": "organization_membership",
}
"""``reconcile --kind`` names → entity kinds, in the order they are compared."""
_BATCH = 200
_SHOWN = 20
"""Ids listed per kind and drift in a report (the counts are always whole)."""


@dataclass
class Drift:
    """What differs for one kind."""

    kind: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.stale)

    def as_json(self, shown: int = _SHOWN) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **{
                name: {"count": len(ids), "ids": sorted(ids)[:shown]}
                for name, ids in (
                    ("missing", self.missing),
                    ("extra", self.extra),
                    ("stale", self.stale),
                )
            },
        }


def stored_versions(conn: Connection, tables: Tables, kind: Kind) -> dict[str, int | None]:
    """Every stored id of ``kind`` and its ``updated_at`` (None when Clerk sent none)."""
    table = tables.entity(kind.name)
    version = table.c.updated_at if "updated_at" in table.c else None
    columns = [table.c.id] if version is None else [table.c.id, version]
    found: dict[str, int | None] = {}
    for row in conn.execute(select(*columns)):
        found[row[0]] = row[1] if len(row) > 1 else None
    return found


def tombstoned(conn: Connection, tables: Tables, kind: Kind) -> set[str]:
    t = tables.tombstones
    return set(conn.execute(select(t.c.id).where(t.c.kind == kind.name)).scalars())


def compare(
    name: str,
    stored: Mapping[str, int | None],
    deleted: set[str],
    remote: Mapping[str, Mapping[str, Any]],
) -> Drift:
    """The drift of one kind, from what is stored, tombstoned, and listed by Clerk."""
    drift = Drift(name)
    for object_id, obj in remote.items():
        if object_id in stored:
            theirs, ours = obj.get("updated_at"), stored[object_id]
            if isinstance(theirs, int) and (ours is None or theirs > ours):
                drift.stale.append(object_id)
        elif object_id not in deleted:
            drift.missing.append(object_id)
    drift.extra = [object_id for object_id in stored if object_id not in remote]
    return drift


def repairs(
    kind: Kind, drift: Drift, remote: Mapping[str, Mapping[str, Any]], now_ms: int
) -> list[Delivery]:
    """The synthetic deliveries that repair ``drift``: upserts of missing and stale objects at
    Clerk's version, deletes of extra ones now."""
    out: list[Delivery] = []
    for action, ids in (("created", drift.missing), ("updated", drift.stale)):
        for object_id in ids:
            obj = dict(remote[object_id])
            at = obj.get("updated_at") or obj.get("created_at") or now_ms
            body = {
                "object": "event",
                "type": f"{kind.events}.{action}",
                "data": obj,
                "timestamp": at,
            }
            out.append(_delivery(f"reconcile_{kind.name}_{object_id}_{at}", body, now_ms))
    delete_action = kind.deletes[0]
    for object_id in drift.extra:
        body = {
            "object": "event",
            "type": f"{kind.events}.{delete_action}",
            "data": {"object": _object_name(kind), "id": object_id, "deleted": True},
            "timestamp": now_ms,
        }
        out.append(_delivery(f"reconcile_{kind.name}_{object_id}_deleted_{now_ms}", body, now_ms))
    return out


def _object_name(kind: Kind) -> str:
    return kind.name


def _delivery(svix_id: str, body: Mapping[str, Any], now_ms: int) -> Delivery:
    return Delivery(svix_id[:255], orjson.dumps(body), now_ms, Source.BACKFILL)


def fix(receiver: Receiver, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """Apply repairs in batches; raises :class:`StoreUnavailable` if one cannot commit."""
    outcomes: list[Outcome] = []
    for start in range(0, len(deliveries), _BATCH):
        for result in receiver.receive_batch(deliveries[start : start + _BATCH]):
            if isinstance(result, Exception):
                raise result
            outcomes.append(result)
    return outcomes


def kinds_named(names: Iterable[str]) -> list[Kind]:
    return [kind_named(RECONCILED[n]) for n in names]


def now_ms() -> int:
    return int(time.time() * 1000)
