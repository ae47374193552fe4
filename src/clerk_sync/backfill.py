"""Backfill: the users, organizations and memberships Clerk had before its webhooks reached us.

Clerk sends webhooks only for changes made after an endpoint exists. The backfill walks the
Backend API and turns every object into a *synthetic delivery* for
:meth:`Receiver.receive_batch` — the one path every webhook takes — so the webhook rules hold
for it unchanged:

* **Versions.** The envelope is ``{"object": "event", "type": "<prefix>.created" (id not
  stored yet) or ".updated", "data": <the object as Clerk sends it>, "timestamp": <its
  updated_at, else created_at>}``. A fetched object never overwrites a newer version a webhook
  stored, and a tombstoned one (or one whose organization or user is) is never written again.
  One exception to the choice of type: when the stored row is *this* version stored by a
  ``.created``, the object is sent as ``.created`` too, so the same version is refused as the
  same version (``unchanged``) instead of rewriting the row (and re-running sinks) by rank.
* **Idempotence.** The svix id is ``backfill_<kind>_<id>_<updated_at>``: the same version
  fetched again is a duplicate, and nothing runs twice.
* **Hooks.** In-transaction hooks run as for webhooks; after-commit hooks only when registered
  with ``backfill=True`` (sinks are), so a first backfill sends no one a welcome e-mail. Each
  delivery's event-log row has ``source = backfill``.

**Resumable.** Each kind keeps a checkpoint in ``sync_state`` (``backfill:<kind>``): the offset
of its next page, written once the page's deliveries have committed. Stopped anywhere (Ctrl-C,
SIGKILL) and run again, a kind continues from its checkpoint; a page committed just before the
stop is fetched again and comes out ``unchanged``, so the result equals one uninterrupted run.
A finished kind forgets its checkpoint: the next run walks it from the start again (a full
re-sync is idempotent). Users, organizations and memberships are walked oldest first
(``order_by=+created_at``), so objects created during a walk go to its end and never shift the
offsets already walked. An object *deleted* in Clerk during a walk shifts the later ones one
place back, so one object may be missed until the next run (its own webhooks still arrive).

Pages are fetched one ahead of the page being committed, so a slow API and a slow database
overlap; the rate budget of :mod:`clerk_sync.clerk_api` bounds the requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Engine, select, tuple_

from .classify import unstorable
from .clerk_api import PAGE_MAX, ClerkApi
from .config import Settings
from .entities import Kind, Upsert, kind_named, tables
from .entities import kind as kinds
from .errors import InvalidPayload, StoreUnavailable
from .events import Source, Status, decode_envelope
from .receiver import Delivery, Outcome, Receiver
from .store import make_engine, state

log = logging.getLogger("clerk_sync.backfill")

SVIX_ID_MAX = 255
"""The event log's ``svix_id`` column."""
_NOT_NEWER = re.compile(r"updated_at (\d+) is not newer than the stored (\d+)")
"""How :func:`clerk_sync.plan_sql.stale_reason` words a version that is not newer."""


class Result(StrEnum):
    """What the backfill did with one fetched object."""

    INSERTED = "inserted"
    """Not stored before: now it is."""
    UPDATED = "updated"
    """Stored in an older version: replaced."""
    UNCHANGED = "unchanged"
    """This version was already stored (or already backfilled: a duplicate)."""
    SKIPPED_STALE = "skipped_stale"
    """A newer version is stored (a webhook got there first)."""
    SKIPPED_DELETED = "skipped_deleted"
    """It, or its organization or user, was deleted: deletes win."""
    FAILED = "failed"
    """It can never be stored (logged ``failed`` with the reason)."""


@dataclass
class Counts:
    """One kind's tally; ``total`` is Clerk's count when known."""

    total: int | None = None
    fetched: int = 0
    resumed_from: int = 0
    """The offset the walk started at (a checkpoint's, else 0)."""
    seconds: float = 0.0
    results: dict[Result, int] = field(default_factory=lambda: dict.fromkeys(Result, 0))

    def add(self, result: Result) -> None:
        self.results[result] += 1

    @property
    def done(self) -> int:
        """Objects walked so far, counting those before the checkpoint resumed from."""
        return self.resumed_from + self.fetched

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form: total, fetched, one key per :class:`Result`, resumed_from,
        seconds."""
        return {
            "total": self.total,
            "fetched": self.fetched,
            **{r.value: n for r, n in self.results.items()},
            "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 3),
        }


Fetch = Callable[[ClerkApi, int, int], tuple[list[dict[str, Any]], int | None]]


@dataclass(frozen=True)
class Walk:
    """How one kind is listed: its entity kind, a page at an offset (and Clerk's total when the
    page says it), and how to count them when pages do not."""

    name: str
    kind: str
    fetch: Fetch
    count: Callable[[ClerkApi], int] | None = None


def _users(api: ClerkApi, offset: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    return api.list_users(offset, limit), None


def _organizations(
    api: ClerkApi, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    page = api.list_organizations(offset, limit)
    return page.data, page.total_count


def _memberships(api: ClerkApi, offset: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    page = api.list_memberships(offset, limit)
    return page.data, page.total_count


WALKS: dict[str, Walk] = {
    w.name: w
    for w in (
        Walk("users", "user", _users, ClerkApi.count_users),
        Walk("organizations", "organization", _organizations),
        Walk("memberships", "organization_membership", _memberships),
    )
}
"""The kinds ``backfill`` walks, in the order ``all`` walks them (parents first)."""

Progress = Callable[[str, Counts], None]


def checkpoint_name(walk: str) -> str:
    """The ``sync_state`` name of a walk's checkpoint, e.g. ``backfill:users``."""
    return f"backfill:{walk}"


class Backfill:
    """Walks kinds of Clerk objects into ``receiver``'s database (see the module docstring)."""

    def __init__(
        self,
        receiver: Receiver,
        client: ClerkApi,
        *,
        page_size: int = PAGE_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= page_size <= PAGE_MAX:
            raise ValueError(f"page_size must be 1 to {PAGE_MAX}")
        self.receiver = receiver
        self.client = client
        self.page_size = page_size
        self._clock = clock

    def run(
        self,
        names: Sequence[str] = tuple(WALKS),
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> dict[str, Counts]:
        """Walk each kind of ``names`` in turn; ``progress(name, counts)`` after every page."""
        unknown = [n for n in names if n not in WALKS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known: {', '.join(WALKS)}")
        return {n: self.run_kind(n, dry_run=dry_run, progress=progress) for n in names}

    def run_kind(
        self, name: str, *, dry_run: bool = False, progress: Progress | None = None
    ) -> Counts:
        """Walk one kind from its checkpoint (from the start on a dry run, which writes
        nothing); a finished walk forgets the checkpoint."""
        walk = WALKS[name]
        kind = kind_named(walk.kind)
        started = time.monotonic()
        counts = Counts(resumed_from=0 if dry_run else self._checkpoint(name))
        offset = counts.resumed_from
        pending = _in_background(walk.fetch, self.client, offset, self.page_size)
        if walk.count is not None:  # while the first page is on its way
            counts.total = walk.count(self.client)
        report = progress or (lambda _name, _counts: None)
        report(name, counts)
        while True:
            items, total = pending.result()
            if total is not None:
                counts.total = total
            more = len(items) == self.page_size
            if more:  # the next page comes while this one is written
                pending = _in_background(
                    walk.fetch, self.client, offset + len(items), self.page_size
                )
            if items:
                self._page(kind, items, counts, dry_run)
            offset += len(items)
            counts.fetched += len(items)
            counts.seconds = time.monotonic() - started
            if not more:
                break
            if not dry_run:
                self._save(name, offset)
            report(name, counts)
        if not dry_run:
            self._forget(name)
        counts.seconds = time.monotonic() - started
        report(name, counts)
        return counts

    # -- one page ---------------------------------------------------------------------------

    def _page(self, kind: Kind, items: list[dict[str, Any]], counts: Counts, dry_run: bool) -> None:
        stored = stored_versions(self.receiver, kind, [o["id"] for o in items])
        if dry_run:
            tombstoned = _tombstoned(self.receiver, kind, items)
            now_ms = self._now_ms()
            for obj in items:
                counts.add(predict(kind, obj, stored.get(obj["id"]), tombstoned, now_ms))
            return
        deliveries = [synthetic_delivery(kind, obj, stored.get(obj["id"])) for obj in items]
        results = self.receiver.receive_batch(deliveries)
        since: set[str] | None = None
        for obj, result in zip(items, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise result  # transient: the checkpoint stays before this page
            verdict = classify(result, existed=obj["id"] in stored)
            version = stored.get(obj["id"])
            if result.duplicate and not _same_version(kind, obj, version):
                # This version was backfilled before and something changed since: say what
                # (deleted, or a newer version stored), as a dry run would.
                if since is None:
                    since = _tombstoned(self.receiver, kind, items)
                seen = predict(kind, obj, version, since, self._now_ms())
                if seen in (Result.SKIPPED_DELETED, Result.SKIPPED_STALE):
                    verdict = seen
            counts.add(verdict)

    # -- checkpoints ------------------------------------------------------------------------

    def _checkpoint(self, name: str) -> int:
        with self.receiver.engine.connect() as conn:
            raw = state.get(conn, self.receiver.tables, checkpoint_name(name))
        if raw is None:
            return 0
        try:
            offset = orjson.loads(raw)["offset"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            offset = None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            log.warning("checkpoint %s is unreadable (%r): starting over", name, raw[:80])
            return 0
        log.info("%s: continuing from the checkpoint at offset %d", name, offset)
        return offset

    def _save(self, name: str, offset: int) -> None:
        value = orjson.dumps({"offset": offset}).decode()
        with self.receiver.engine.begin() as conn:
            state.put(conn, self.receiver.tables, checkpoint_name(name), value, self._now_ms())

    def _forget(self, name: str) -> None:
        with self.receiver.engine.begin() as conn:
            state.forget(conn, self.receiver.tables, checkpoint_name(name))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def ensure_user(
    user_id: str,
    *,
    receiver: Engine | Receiver | None = None,
    client: ClerkApi | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Fetch one user from Clerk and apply it under the webhook rules, as the backfill does:
    e.g. when your application meets a signed-in user the database does not hold yet.

    ``clerk_sync.ensure_user("user_…")`` alone reads the settings (the environment, ``.env``,
    ``.env.local``: ``DATABASE_URL``, ``TABLE_PREFIX``, ``CLERK_SECRET_KEY``, …) and opens, then
    closes, what it needs; an application that calls it often passes its own ``receiver`` (a
    :class:`Receiver` with the deployment's tables and hooks, or an engine for the default
    tables and no hooks) and ``client`` (a :class:`ClerkApi`). Returns the delivery's
    :class:`Outcome`: ``processed`` (``type`` ``user.created``: it was not stored;
    ``user.updated``: an older version was), ``stale`` (a newer version is stored, or the user
    was deleted: ``reason`` says which) or a duplicate (this version was already fetched).
    Raises :class:`~clerk_sync.clerk_api.NotInClerk` when Clerk has no such user,
    :class:`~clerk_sync.clerk_api.ClerkApiError` when the API fails, and
    :class:`~clerk_sync.errors.StoreUnavailable` when the database does.
    """
    with contextlib.ExitStack() as owned:
        if receiver is None or client is None:
            settings = settings or Settings.load()
        if client is None:
            assert settings is not None
            client = owned.enter_context(ClerkApi.from_settings(settings))
        if receiver is None:
            assert settings is not None
            engine = make_engine(
                settings.sqlalchemy_url(), sqlite_synchronous=settings.sqlite_synchronous
            )
            owned.callback(engine.dispose)
            receiver = Receiver(
                engine, tables=tables(settings.table_prefix, settings.schema_name())
            )
        elif not isinstance(receiver, Receiver):
            receiver = Receiver(receiver)
        user = client.get_user(user_id)
        kind = kind_named("user")
        stored = stored_versions(receiver, kind, [user["id"]])
        return receiver.receive(synthetic_delivery(kind, user, stored.get(user["id"])))


# -- the synthetic delivery ----------------------------------------------------------------


def synthetic_delivery(kind: Kind, obj: dict[str, Any], stored_version: int | None) -> Delivery:
    """The delivery a fetched object becomes (see the module docstring)."""
    updated_at = _millis(obj.get("updated_at"))
    when = updated_at if updated_at is not None else _millis(obj.get("created_at"))
    event: dict[str, Any] = {
        "object": "event",
        "type": f"{kind.events}.{_action(updated_at, stored_version)}",
        "data": obj,
    }
    if when is not None:
        event["timestamp"] = when
    return Delivery(svix_id(kind, obj), orjson.dumps(event), source=Source.BACKFILL)


def svix_id(kind: Kind, obj: dict[str, Any]) -> str:
    """``backfill_<kind>_<id>_<updated_at>``, the id hashed when that would not fit the log."""
    version = obj.get("updated_at", obj.get("created_at"))
    stamp = str(version) if isinstance(version, int) else "none"
    object_id = str(obj["id"])
    made = f"backfill_{kind.name}_{object_id}_{stamp}"
    if len(made) <= SVIX_ID_MAX:
        return made
    digest = hashlib.sha256(object_id.encode()).hexdigest()
    return f"backfill_{kind.name}_sha256-{digest}_{stamp}"[:SVIX_ID_MAX]


def _action(updated_at: int | None, stored_version: int | None) -> str:
    if stored_version is None:
        return "created"
    if updated_at is not None and kinds.version(updated_at, 0, "created") == stored_version:
        return "created"  # this very version, stored by a .created: the same version again
    return "updated"


def _same_version(kind: Kind, obj: dict[str, Any], stored_version: int | None) -> bool:
    """Whether the stored row holds the object's ``updated_at`` (whatever its action's rank)."""
    updated_at = _millis(obj.get("updated_at"))
    if stored_version is None or updated_at is None:
        return False
    return Upsert(kind, str(obj["id"]), stored_version, {}).updated_at == updated_at


def _millis(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def classify(outcome: Outcome, *, existed: bool) -> Result:
    """What a synthetic delivery's outcome means for the object (``existed``: its id was
    stored before). A stale outcome is told apart by its reason, whose wording
    :func:`clerk_sync.plan_sql.stale_reason` owns (pinned by the tests)."""
    if outcome.duplicate:
        return Result.UNCHANGED
    if outcome.status == Status.PROCESSED:
        return Result.UPDATED if existed else Result.INSERTED
    if outcome.status == Status.STALE:
        reason = outcome.reason or ""
        if reason.endswith("deletes win"):
            return Result.SKIPPED_DELETED
        versions = _NOT_NEWER.fullmatch(reason)
        if versions is not None and versions[1] == versions[2]:
            return Result.UNCHANGED
        return Result.SKIPPED_STALE
    return Result.FAILED


def predict(
    kind: Kind,
    obj: dict[str, Any],
    stored_version: int | None,
    tombstoned: set[str],
    now_ms: int,
) -> Result:
    """A dry run's verdict on one object, from what is stored, without writing: the decisions
    the receiver would take (decode, version, tombstones of it and of its parents)."""
    delivery = synthetic_delivery(kind, obj, stored_version)
    try:
        envelope = decode_envelope(delivery.body)
        if unstorable(delivery.body, envelope.data) is not None:
            return Result.FAILED
        action = envelope.type.split(".", 1)[1]
        own = kinds.plan(kind, envelope, action, now_ms).writes[0]
    except InvalidPayload:
        return Result.FAILED
    assert isinstance(own, Upsert)
    if f"{kind.name}:{own.id}" in tombstoned or any(
        f"{parent}:{own.row.get(column)}" in tombstoned for column, parent in kind.parents.items()
    ):
        return Result.SKIPPED_DELETED
    if stored_version is None:
        return Result.INSERTED
    if own.version > stored_version:
        return Result.UPDATED
    return Result.UNCHANGED if own.version == stored_version else Result.SKIPPED_STALE


# -- reads ---------------------------------------------------------------------------------


def stored_versions(receiver: Receiver, kind: Kind, ids: Iterable[str]) -> dict[str, int]:
    """``sync_version`` of each of ``ids`` that ``kind``'s table holds."""
    wanted = list(ids)
    if not wanted:
        return {}
    table = receiver.tables.entity(kind.name)
    with receiver.engine.connect() as conn:
        rows = conn.execute(select(table.c.id, table.c.sync_version).where(table.c.id.in_(wanted)))
        return {row[0]: int(row[1]) for row in rows}


def _tombstoned(receiver: Receiver, kind: Kind, items: Sequence[Mapping[str, Any]]) -> set[str]:
    """``kind:id`` of each tombstone among the objects and the parents they name."""
    keys: set[tuple[str, str]] = set()
    for obj in items:
        keys.add((kind.name, str(obj["id"])))
        try:
            row = kind.values(kinds.decode(kind.model, dict(obj)))
        except InvalidPayload:
            continue
        for column, parent in kind.parents.items():
            value = row.get(column)
            if isinstance(value, str):
                keys.add((parent, value))
    t = receiver.tables.tombstones
    with receiver.engine.connect() as conn:
        rows = conn.execute(select(t.c.kind, t.c.id).where(tuple_(t.c.kind, t.c.id).in_(keys)))
        return {f"{row[0]}:{row[1]}" for row in rows}


def _in_background(fetch: Fetch, client: ClerkApi, offset: int, limit: int) -> Future[Any]:
    """``fetch`` on a daemon thread: an interrupted run never waits for a prefetch to end."""
    future: Future[Any] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fetch(client, offset, limit))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="clerk-sync-backfill-fetch", daemon=True).start()
    return future
