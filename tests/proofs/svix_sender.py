"""A sender that behaves like Svix, and what such a sender can check of the endpoint's log
(a helper, not a test module).

Svix delivers each message until the endpoint answers 2xx: connection errors, timeouts, 429 and
5xx are retried after a back-off, every attempt carries the same ``svix-id`` and a fresh
timestamp and signature, and several messages are in flight at once. Any other 4xx is a
permanent failure, which for these proofs is a bug to report. Everything stops at a deadline.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, select

from clerk_sync.devtools import sign_headers
from clerk_sync.web import WEBHOOK_PATH
from tests.helpers.tables import events_table

from .model import Event, Key, State, Version, effects, named_user

RETRYABLE_4XX = frozenset({408, 425, 429})
"""4xx answers Svix retries like a 5xx (timeout, too early, rate limited)."""


@dataclass(frozen=True, eq=False)
class Message:
    """One delivery to make: a svix id and the exact bytes to sign and send.

    The same svix id may appear in several messages (Svix sends a message again). Messages
    sharing a ``barrier`` wait for each other before their first attempt, so they land together
    (e.g. one svix id racing to two replicas); give them the same relative order in every list.
    """

    svix_id: str
    body: bytes
    barrier: threading.Barrier | None = None


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt at one message, and what came back."""

    index: int
    """The message's position in the list given to :func:`send`."""
    svix_id: str
    number: int
    """1 for the first attempt at this message, 2 for its first retry, …"""
    status: int | None
    """The HTTP status, or None when the attempt failed in transport (refused, reset, timeout)."""
    error: str | None = None
    answer: dict[str, Any] | None = None
    """The JSON body of a 2xx answer."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Report:
    """What a run of :func:`send` did."""

    messages: Sequence[Message]
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[int, Attempt] = field(default_factory=dict)
    """Message index → the attempt that got the 2xx."""
    failures: list[str] = field(default_factory=list)
    """Permanent refusals (a 4xx Svix does not retry) and other sender-side problems."""
    elapsed: float = 0.0

    @property
    def unfinished(self) -> list[int]:
        """Indexes of messages that never got a 2xx."""
        return [i for i in range(len(self.messages)) if i not in self.accepted]

    def statuses(self) -> dict[str, int]:
        """HTTP status (``transport`` for none) → number of attempts."""
        out: dict[str, int] = {}
        for attempt in self.attempts:
            key = "transport" if attempt.status is None else str(attempt.status)
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def check(self) -> None:
        """Fail unless every message got its 2xx and nothing was refused for good."""
        problems = list(self.failures[:10])
        missing = self.unfinished
        if missing:
            problems.append(
                f"{len(missing)} of {len(self.messages)} messages never got a 2xx, e.g. "
                f"{[self.messages[i].svix_id for i in missing[:5]]}"
            )
        assert not problems, "\n".join(problems)

    def summary(self) -> str:
        retried = sum(1 for a in self.accepted.values() if a.number > 1)
        return (
            f"{len(self.messages)} messages, {len(self.attempts)} attempts "
            f"({retried} accepted only on a retry), statuses {self.statuses()}, "
            f"{self.elapsed:.1f} s"
        )


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


def send(
    messages: Sequence[Message],
    base_url: str,
    secret: str,
    *,
    concurrency: int = 16,
    deadline: float = 60.0,
    timeout: float = 10.0,
    path: str = WEBHOOK_PATH,
    seed: int = 0,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> Report:
    """Deliver every message to ``base_url + path`` with ``concurrency`` in flight, retrying
    each until it is answered 2xx; stop by ``deadline`` seconds from now whatever happens.

    Messages start in list order, as Svix sends them. ``on_attempt`` is called (from a sender
    thread) after every attempt.
    """
    report = Report(messages)
    lock = threading.Lock()
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(messages)):
        todo.put(index)
    started = time.monotonic()
    stop_at = started + deadline

    def record(attempt: Attempt, failure: str | None = None) -> None:
        with lock:
            report.attempts.append(attempt)
            if attempt.ok:
                report.accepted[attempt.index] = attempt
            if failure is not None:
                report.failures.append(failure)
        if on_attempt is not None:
            on_attempt(attempt)

    def deliver(client: httpx.Client, index: int, rng: random.Random) -> None:
        message = messages[index]
        if message.barrier is not None:
            try:
                message.barrier.wait(timeout=max(0.0, stop_at - time.monotonic()))
            except threading.BrokenBarrierError:
                with lock:
                    report.failures.append(f"{message.svix_id}: its twin never came (barrier)")
        number = 0
        while time.monotonic() < stop_at:
            number += 1
            wait = 0.0
            # Re-signed on every attempt: same svix id, fresh timestamp, as Svix does.
            headers = sign_headers(secret, message.body, msg_id=message.svix_id)
            headers["content-type"] = "application/json"
            try:
                response = client.post(path, content=message.body, headers=headers)
            except httpx.TransportError as exc:
                record(Attempt(index, message.svix_id, number, None, repr(exc)))
            else:
                code = response.status_code
                if 200 <= code < 300:
                    record(Attempt(index, message.svix_id, number, code, answer=response.json()))
                    return
                attempt = Attempt(index, message.svix_id, number, code, response.text[:300])
                if 400 <= code < 500 and code not in RETRYABLE_4XX:
                    record(attempt, f"{message.svix_id}: HTTP {code} {response.text[:300]}")
                    return
                record(attempt)
                if code == 429:
                    wait = min(1.0, _retry_after(response))
            # Svix backs off exponentially; the proofs compress its schedule to milliseconds.
            wait = max(wait, min(0.5, 0.02 * 2 ** min(number, 5)) * (0.5 + rng.random()))
            time.sleep(max(0.0, min(wait, stop_at - time.monotonic())))

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx.Client(base_url=base_url, timeout=timeout) as client:
            while time.monotonic() < stop_at:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    deliver(client, index, rng)
                except Exception as exc:  # a bug here must not hang the run
                    with lock:
                        report.failures.append(f"{messages[index].svix_id}: {exc!r}")

    threads = [
        threading.Thread(target=worker, args=(n,), name=f"svix-sender-{n}", daemon=True)
        for n in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.1, stop_at - time.monotonic() + timeout + 1.0))
    report.elapsed = time.monotonic() - started
    if any(thread.is_alive() for thread in threads):
        report.failures.append("sender threads still running after the deadline")
    return report


def check_event_log(
    engine: Engine,
    bodies: Mapping[str, bytes],
    reports: Sequence[Report],
    expected: State,
) -> None:
    """Check the ``events`` table against what was sent and answered.

    ``bodies`` is svix id → the bytes sent under it; ``expected`` the model's state of the
    history. Asserted: exactly one row per svix id; every column consistent with the body (the
    body kept verbatim, or erased iff the user it names is deleted); a delete, and an upsert
    that is its object's one newest version with its object and parents alive, ``processed``;
    ``delivery_count`` between the number of 2xx answers for that id (each 2xx must follow its
    commit: none lost) and that plus the attempts that got no 2xx (which may or may not have
    committed); at most one answer not marked ``duplicate`` (never applied twice), and every
    2xx answer carrying the status the row holds.
    """
    with engine.connect() as conn:
        rows = {r.svix_id: r for r in conn.execute(select(events_table)).all()}
    answers: dict[str, list[dict[str, Any]]] = {}
    unanswered: dict[str, int] = {}
    for report in reports:
        for attempt in report.attempts:
            if attempt.ok:
                assert attempt.answer is not None
                answers.setdefault(attempt.svix_id, []).append(attempt.answer)
            else:
                unanswered[attempt.svix_id] = unanswered.get(attempt.svix_id, 0) + 1

    events = {svix_id: orjson.loads(body) for svix_id, body in bodies.items()}
    versions: dict[Key, Counter[Version]] = {}
    for event in events.values():
        for w in effects(event).writes:
            versions.setdefault(w.key, Counter())[w.version] += 1

    def must_apply(event: Event) -> bool:
        """A delete always applies; an upsert when no other delivery writes its object at its
        version or above, and neither it nor a parent is tombstoned."""
        done = effects(event)
        if done.deleted is not None:
            return True
        own = done.writes[0]
        newest = max(versions[own.key])
        alive = all(i not in expected.tombstones[k] for k, i in [own.key, *own.parents()])
        return alive and own.version == newest and versions[own.key][newest] == 1

    problems: list[str] = []
    missing = sorted(set(bodies) - set(rows))
    extra = sorted(set(rows) - set(bodies))
    if missing or extra:
        problems.append(
            f"{len(missing)} svix ids have no row ({missing[:3]}), {len(extra)} rows "
            f"were never sent ({extra[:3]})"
        )
    for svix_id in sorted(set(bodies) & set(rows)):
        row, body = rows[svix_id], bodies[svix_id]
        event = events[svix_id]
        subject = event["data"]["id"]
        oks = answers.get(svix_id, [])
        fresh = [a for a in oks if not a["duplicate"]]

        def bad(what: str, row: Any = row, svix_id: str = svix_id) -> None:
            problems.append(f"{svix_id}: {what}; row {dict(row._mapping) | {'payload': '…'}}")

        if (row.type, row.subject_id, row.event_timestamp) != (
            event["type"],
            subject,
            event["timestamp"],
        ):
            bad("type, subject_id or event_timestamp differ from the body")
        if row.status not in ("processed", "stale"):
            bad(f"status {row.status!r}")
        if must_apply(event) and row.status != "processed":
            bad("the delete, or the newest version of a live object, was not applied")
        if (row.error is None) != (row.status == "processed"):
            bad("error must be set exactly when the status is not processed")
        keep = named_user(event) not in expected.deleted_users
        if row.payload != (body.decode() if keep else None):
            bad("payload neither the exact body nor erased as its user's deletion requires")
        if not len(oks) <= row.delivery_count <= len(oks) + unanswered.get(svix_id, 0):
            bad(
                f"delivery_count {row.delivery_count} but {len(oks)} answers 2xx and "
                f"{unanswered.get(svix_id, 0)} attempts without one"
            )
        if len(fresh) > 1 or (not fresh and row.delivery_count == len(oks)):
            bad(f"{len(fresh)} of {len(oks)} answers say it was applied (duplicate: false)")
        for answer in oks:
            if (answer["svix_id"], answer["status"], answer["subject_id"]) != (
                svix_id,
                row.status,
                subject,
            ):
                bad(f"answered {answer}")
    assert not problems, f"{len(problems)} problems in the event log:\n" + "\n".join(problems[:10])
