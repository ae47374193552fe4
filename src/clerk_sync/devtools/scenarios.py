"""What ``clerk-sync trigger`` sends: a plan of deliveries that exercises the hard cases on purpose.

A plan is built in three steps, each a pure function of the options (and a clock and a random
source, so tests can fix them):

1. a *story* per subject: the event type given, or a scenario (``lifecycle``: created → updated
   → deleted), each change a second after the previous one; ``stale`` adds a ``.updated`` that is
   older than the newest version, sent after it;
2. the bodies: built from the fixture catalog, ``--set`` overrides applied, serialized once;
3. delivery order: ``duplicate`` sends each message twice (same svix id and bytes, as Svix
   retries), then ``shuffle`` mixes the order of everything, copies included.

Signing happens when a delivery is sent, not here, so every attempt gets a fresh timestamp as it
does from Svix. ``bad_signature`` and ``expired`` say how every delivery is to be signed, and
what answer the plan aims at: the 401 the endpoint gives for each.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Literal

from ..errors import InvalidParameter
from .catalog import Fixture, Subject, fixture_for, fixture_types
from .fixtures import encode, new_id
from .overrides import Override, apply_override
from .signing import new_msg_id

Signing = Literal["valid", "wrong-secret", "expired"]
SCENARIOS: dict[str, tuple[str, ...]] = {
    "lifecycle": ("user.created", "user.updated", "user.deleted"),
}
_STEP_MS = 1_000
_STORY_START_MS = 10_000
"""Stories start this long before now, so every change lies in the (recent) past."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One delivery to send: its bytes, what it is about, how to sign it, what it aims at."""

    event_type: str
    subject_id: str
    msg_id: str
    body: bytes
    signing: Signing = "valid"
    note: str = ""
    """Why it is there when it is not plain: ``stale on purpose``, ``second copy``."""

    @property
    def expects(self) -> str:
        """``2xx``, or the error code the endpoint answers to this signing on purpose."""
        return {
            "valid": "2xx",
            "wrong-secret": "signature_mismatch",
            "expired": "timestamp_out_of_tolerance",
        }[self.signing]


@dataclass(frozen=True, slots=True)
class PlanOptions:
    event_type: str | None = None
    scenario: str | None = None
    user_id: str | None = None
    count: int = 1
    overrides: tuple[Override, ...] = ()
    duplicate: bool = False
    shuffle: bool = False
    stale: bool = False
    bad_signature: bool = False
    expired: bool = False


def unknown_type_message(event_type: str) -> str:
    return (
        f"Unknown event type {event_type!r}: the known ones are {', '.join(fixture_types())} "
        "(clerk-sync trigger --list)."
    )


def _story_types(options: PlanOptions) -> tuple[str, ...]:
    if options.event_type and options.scenario:
        raise InvalidParameter("Give either an EVENT_TYPE or --scenario, not both.")
    if options.scenario:
        if options.scenario not in SCENARIOS:
            raise InvalidParameter(
                f"Unknown scenario {options.scenario!r}: the known ones are "
                f"{', '.join(sorted(SCENARIOS))}."
            )
        return SCENARIOS[options.scenario]
    if not options.event_type:
        raise InvalidParameter(
            f"Give an EVENT_TYPE ({', '.join(fixture_types())}) or --scenario "
            f"({', '.join(sorted(SCENARIOS))}); --list shows them."
        )
    if fixture_for(options.event_type) is None:
        raise InvalidParameter(unknown_type_message(options.event_type))
    return (options.event_type,)


def _check_options(options: PlanOptions, story: tuple[str, ...]) -> Fixture | None:
    if options.count < 1:
        raise InvalidParameter("--count must be at least 1.")
    if options.user_id is not None and options.count > 1:
        raise InvalidParameter(
            "--user-id names one user and --count N sends to N distinct users: use one of them."
        )
    if options.bad_signature and options.expired:
        raise InvalidParameter("Use --bad-signature or --expired, not both: each aims at one 401.")
    if not options.stale:
        return None
    resource = story[0].split(".")[0]
    later = fixture_for(f"{resource}.updated")
    if later is None or not later.versioned:
        raise InvalidParameter(
            f"--stale sends an older {resource}.updated, and there is no such versioned event; "
            "use it with user events."
        )
    return later


def plan(
    options: PlanOptions, *, now_ms: int | None = None, rng: random.Random | None = None
) -> list[Planned]:
    """The deliveries for ``options``, in the order to send them."""
    story = _story_types(options)
    stale_fixture = _check_options(options, story)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    signing: Signing = (
        "wrong-secret" if options.bad_signature else "expired" if options.expired else "valid"
    )
    first = fixture_for(story[0])
    assert first is not None
    deliveries: list[Planned] = []
    for index in range(options.count):
        subject_id = options.user_id or new_id(first.id_prefix)
        start = now - _STORY_START_MS
        steps: list[tuple[str, int, str]] = [
            (event_type, start + (n + 1) * _STEP_MS, "") for n, event_type in enumerate(story)
        ]
        if stale_fixture is not None:
            steps = _with_stale(steps, stale_fixture.event_type, start)
        for event_type, at_ms, note in steps:
            fixture = fixture_for(event_type)
            assert fixture is not None
            event = fixture.build(Subject(subject_id, index, start, at_ms))
            for override in options.overrides:
                apply_override(event, override)
            deliveries.append(
                Planned(event_type, subject_id, new_msg_id(), encode(event), signing, note)
            )
    if options.duplicate:
        deliveries = [copy for d in deliveries for copy in (d, d)]
    if options.shuffle:
        (rng or random.Random()).shuffle(deliveries)  # noqa: S311 - an order, not a secret
    return _mark_copies(deliveries)


def _mark_copies(deliveries: list[Planned]) -> list[Planned]:
    """Note each message sent before as a ``second copy``, in the order they are sent."""
    seen: set[str] = set()
    marked: list[Planned] = []
    for d in deliveries:
        marked.append(replace(d, note=_join(d.note, "second copy")) if d.msg_id in seen else d)
        seen.add(d.msg_id)
    return marked


def _with_stale(
    steps: list[tuple[str, int, str]], stale_type: str, start: int
) -> list[tuple[str, int, str]]:
    """Insert an update older than the newest versioned change, right after that change."""
    versioned = [
        n for n, (t, _, _) in enumerate(steps) if (f := fixture_for(t)) is not None and f.versioned
    ]
    if not versioned:
        return [*steps, (stale_type, start + _STEP_MS // 2, "stale on purpose")]
    newest = versioned[-1]
    older = steps[newest][1] - _STEP_MS // 2
    return [*steps[: newest + 1], (stale_type, older, "stale on purpose"), *steps[newest + 1 :]]


def _join(*notes: str) -> str:
    return ", ".join(n for n in notes if n)
