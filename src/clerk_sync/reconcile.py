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

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from .backfill import WALKS, synthetic_delivery
from .clerk_api import PAGE_MAX, ClerkApi
from .entities import Kind, kind_named
from .events import Source
from .notify.alerts import RECONCILE_DRIFT_STATE, RECONCILE_STATE
from .receiver import Delivery, Outcome, Receiver
from .store import Tables, state
from .store.engine import write_transaction

log = logging.getLogger("clerk_sync.reconcile")
AfterDrift = Callable[[Connection, int], Any]

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
    kind: Kind,
    drift: Drift,
    remote: Mapping[str, Mapping[str, Any]],
    now_ms: int,
    stored: Mapping[str, int | None] | None = None,
) -> list[Delivery]:
    """The synthetic deliveries that repair ``drift``: upserts of missing and stale objects at
    Clerk's version (the backfill's deliveries), deletes of extra ones now."""
    known = stored or {}
    out = [
        synthetic_delivery(kind, dict(remote[object_id]), known.get(object_id))
        for object_id in (*drift.missing, *drift.stale)
    ]
    delete_action = kind.deletes[0]
    for object_id in drift.extra:
        body = {
            "object": "event",
            "type": f"{kind.events}.{delete_action}",
            "data": {"object": kind.name, "id": object_id, "deleted": True},
            "timestamp": now_ms,
        }
        svix_id = f"reconcile_{kind.name}_{object_id}_deleted_{now_ms}"[:255]
        out.append(Delivery(svix_id, orjson.dumps(body), now_ms, Source.BACKFILL))
    return out


def remote_objects(
    api: ClerkApi, name: str, page_size: int = PAGE_MAX
) -> dict[str, dict[str, Any]]:
    """Every object Clerk lists for ``name`` (``users``, ``organizations``, ``memberships``)."""
    walk = WALKS[name]
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        items, _ = walk.fetch(api, offset, page_size)
        for item in items:
            found[str(item["id"])] = item
        if len(items) < page_size:
            return found
        offset += len(items)


def reconcile(
    receiver: Receiver,
    api: ClerkApi,
    names: Sequence[str],
    *,
    fix_drift: bool,
    after_drift: AfterDrift | None = None,
) -> list[Drift]:
    """Compare each kind of ``names`` with Clerk; repair what differs when ``fix_drift``; keep
    the summary (``sync_state``) for the ``reconcile_drift`` alert, and call ``after_drift``
    in that transaction when there was drift (``serve`` checks its alerts then)."""
    drifts: list[Drift] = []
    tables = receiver.tables
    for name in names:
        kind = kind_named(RECONCILED[name])
        remote = remote_objects(api, name)
        with receiver.engine.connect() as conn:
            stored = stored_versions(conn, tables, kind)
            deleted = tombstoned(conn, tables, kind)
        drift = compare(name, stored, deleted, remote)
        if fix_drift and drift.total:
            fix(receiver, repairs(kind, drift, remote, now_ms(), stored))
        drifts.append(drift)
    at = now_ms()
    summary = {
        "at": at,
        "total": sum(d.total for d in drifts),
        "fixed": fix_drift,
        "kinds": {
            d.kind: {"missing": len(d.missing), "extra": len(d.extra), "stale": len(d.stale)}
            for d in drifts
        },
    }
    text = orjson.dumps(summary).decode()
    with write_transaction(receiver.engine) as conn:
        state.put(conn, tables, RECONCILE_STATE, text, at)
        if summary["total"]:
            state.put(conn, tables, RECONCILE_DRIFT_STATE, text, at)
            if after_drift is not None:
                after_drift(conn, at)
    return drifts


class Reconciler:
    """``RECONCILE_EVERY`` in ``serve``: ``reconcile --fix`` of every kind, on a timer, in a
    thread; a failure (Clerk unreachable, a refused key) is logged and tried at the next tick."""

    def __init__(
        self,
        receiver: Receiver,
        api: ClerkApi,
        every_seconds: float,
        after_drift: AfterDrift | None = None,
    ) -> None:
        self.receiver = receiver
        self.api = api
        self.every = every_seconds
        self.after_drift = after_drift
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clerk-sync reconcile")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.api.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                drifts = await asyncio.to_thread(
                    reconcile,
                    self.receiver,
                    self.api,
                    list(RECONCILED),
                    fix_drift=True,
                    after_drift=self.after_drift,
                )
            except Exception as exc:  # reported, and tried again at the next tick
                log.warning("reconcile failed: %s: %s", type(exc).__name__, exc)
                continue
            total = sum(d.total for d in drifts)
            (log.warning if total else log.info)(
                "reconcile: %d difference(s) with Clerk repaired (%s)",
                total,
                ", ".join(
                    f"{d.kind} {len(d.missing)}/{len(d.extra)}/{len(d.stale)}" for d in drifts
                ),
            )


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
