"""Running after-commit hooks in tests: a receiver that writes outbox rows for a set of hooks,
a worker with a clock the test moves, and what the outbox holds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from clerk_sync import tables as deployment_tables
from clerk_sync.devtools import encode
from clerk_sync.hooks import ChangeEvent, Hook, HookSet
from clerk_sync.outbox import OutboxSettings, OutboxWorker
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store import Tables


@dataclass
class Clock:
    """Seconds since the epoch, moved by the test."""

    now: float = 1_744_400_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """An after-commit hook that records its calls and fails as told."""

    calls: list[ChangeEvent] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    """subject id → how many more calls for it raise."""

    def __call__(self, event: ChangeEvent) -> None:
        self.calls.append(event)
        left = self.failures.get(event.subject_id, 0)
        if left:
            self.failures[event.subject_id] = left - 1
            raise RuntimeError(f"told to fail for {event.subject_id}")

    def hook(self, *patterns: str, name: str = "tests:recorder", mirror: bool = False) -> Hook:
        return Hook(name, "after_commit", patterns or ("user.*",), self, mirror=mirror)


class Outbox:
    """A receiver and a worker sharing ``hooks``, one engine and one clock."""

    def __init__(
        self,
        engine: Engine,
        hooks: Iterable[Hook],
        *,
        clock: Clock | None = None,
        tables: Tables | None = None,
        **settings: Any,
    ) -> None:
        self.engine = engine
        self.tables = tables or deployment_tables()
        self.clock = clock or Clock()
        self.hooks = HookSet(tuple(hooks))
        self.receiver = Receiver(
            engine,
            tables=self.tables,
            hooks=self.hooks.in_transaction,
            outbox=self.hooks.routes(),
            clock=self.clock,
        )
        self.settings = OutboxSettings(**{"max_attempts": 3, **settings})

    def receive(self, event: dict[str, Any], svix_id: str | None = None) -> Outcome:
        svix_id = svix_id or f"msg_{secrets.token_hex(8)}"
        return self.receiver.receive(Delivery(svix_id, encode(event)))

    def worker(self) -> OutboxWorker:
        return OutboxWorker(self.engine, self.tables, self.hooks, self.settings, clock=self.clock)

    def drain(self, worker: OutboxWorker | None = None) -> None:
        """Run every due row (and stop the worker's threads)."""

        async def go() -> None:
            w = worker or self.worker()
            try:
                await w.drain(timeout=30)
            finally:
                await w.stop()

        asyncio.run(go())

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        table = self.tables.outbox
        query = select(table).order_by(table.c.id)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
