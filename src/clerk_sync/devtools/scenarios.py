"""What ``clerk-sync trigger`` sends: a plan of deliveries that exercises the hard cases on purpose.

A plan is built in three steps, each a pure function of the options (and a clock and a random
source, so tests can fix them):

1. a *story* per run of ``--count N``, each change a second after the previous one, all in the
   recent past. A story is one of two kinds:

   * a :class:`Story` about one subject: the event type given, or a scenario (``lifecycle``:
     user.created → user.updated → user.deleted), each event built by its catalog fixture;
     ``--user-id`` names the subject, and ``stale`` adds a ``.updated`` that is older than the
     newest version, sent after it;
   * a :class:`Script` about several objects whose events must agree — the ids one event refers
     to are those of objects created earlier in it (``org-lifecycle``: an organization, its
     members, an invitation). ``--count N`` plays it N times, independently;

2. the bodies: ``--set`` overrides applied to every event, each serialized once;
3. delivery order: ``duplicate`` sends each message twice (same svix id and bytes, as Svix
   retries), then ``shuffle`` mixes the order of everything, copies included.

Signing happens when a delivery is sent, not here, so every attempt gets a fresh timestamp as it
does from Svix. ``bad_signature`` and ``expired`` say how every delivery is to be signed, and
what answer the plan aims at: the 401 the endpoint gives for each.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..errors import InvalidParameter
from .catalog import (
    DELIVERY_LAG_MS,
    Fixture,
    Subject,
    fixture_for,
    fixture_types,
    organization_persona,
    persona,
    persona_user,
)
from .fixtures import (
    deleted_object,
    encode,
    envelope,
    invitation_object,
    membership_object,
    new_id,
    organization_object,
)
from .overrides import Override, apply_override
from .signing import new_msg_id

Signing = Literal["valid", "wrong-secret", "expired"]
_STEP_MS = 1_000
_STORY_START_MS = 30_000
"""Stories start this long before now, so every change lies in the (recent) past — the longest,
``org-lifecycle``, takes 14 s."""


@dataclass(frozen=True, slots=True)
class Step:
    """One change in a story: the event Clerk sends for it and the id of what it is about."""

    event_type: str
    subject_id: str
    """``data.id``: the organization, user, membership, invitation, … the event is about."""
    event: dict[str, Any]
    note: str = ""
    """Why it is there when it is not plain (``stale on purpose``)."""


@dataclass(frozen=True, slots=True)
class Story:
    """Event types about one subject, in order, each built by its catalog fixture."""

    types: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line for ``trigger --list``, e.g. ``user.created → user.deleted, per user``."""
        return f"{' → '.join(self.types)}, per {self.types[0].split('.')[0]}"


@dataclass(frozen=True, slots=True)
class Script:
    """A story about several related objects, played by ``play(run_index, start_ms)``."""

    summary: str
    """One line for ``trigger --list``: the steps."""
    play: Callable[[int, int], list[Step]]
    """``play(index, start_ms)``: the steps of the ``index``-th run of ``--count N``, in the
    order they happen, the first a step after ``start_ms``."""


class _Timeline:
    """The steps of one run of a script, as they are sent."""

    def __init__(self, start_ms: int) -> None:
        self.at_ms = start_ms
        self.steps: list[Step] = []

    def tick(self) -> int:
        """The time of the next change: a step after the previous one."""
        self.at_ms += _STEP_MS
        return self.at_ms

    def send(self, event_type: str, data: dict[str, Any], at_ms: int) -> None:
        """The event for the change to ``data`` at ``at_ms``; it gets its own copy of ``data``
        (overrides change each event in place, and objects are embedded in several)."""
        event = envelope(event_type, copy.deepcopy(data), at_ms + DELIVERY_LAG_MS)
        self.steps.append(Step(event_type, data["id"], event))


_ORG_PEOPLE = 4
"""Users per organization in ``org-lifecycle``: three who join, one who is invited."""


def org_lifecycle(index: int, start_ms: int) -> list[Step]:
    """An organization's life, with ids that agree across its 14 events.

    1. ``organization.created`` (from the dashboard: no ``created_by``);
    2. three users: each ``user.created``, then ``organizationMembership.created`` as
       ``org:member`` with the organization embedded;
    3. the first is promoted: ``organizationMembership.updated`` to ``org:admin``;
    4. the admin invites a fourth user: ``organizationInvitation.created`` (pending), then
       ``.accepted`` with the ``user_id`` of the user who then signs up (``user.created``)
       and joins (``organizationMembership.created``);
    5. the admin leaves: ``organizationMembership.deleted`` carries the full membership as last
       sent, ``updated_at`` not bumped — equal to the promotion's, so a shuffled ``.updated``
       has the same version as the delete;
    6. ``organization.deleted``: the stub ``{object, id, slug, deleted}``.

    Run ``index`` is the ``index``-th made-up organization and its users are personas
    ``4 × index`` to ``4 × index + 3``, so ``--count N`` makes N organizations that share no
    user. It makes its own ids: ``--user-id`` is refused with it.
    """
    story = _Timeline(start_ms)
    name, slug = organization_persona(index)
    at = story.tick()
    organization = organization_object(name=name, slug=slug, created_at=at)
    story.send("organization.created", organization, at)

    def sign_up(person: int, user_id: str | None = None) -> dict[str, Any]:
        at = story.tick()
        subject = Subject(user_id or new_id("user"), _ORG_PEOPLE * index + person, at, at)
        user = persona_user(subject)
        story.send("user.created", user, at)
        return user

    def join(user: dict[str, Any]) -> dict[str, Any]:
        at = story.tick()
        membership = membership_object(organization=organization, user=user, created_at=at)
        story.send("organizationMembership.created", membership, at)
        return membership

    users = []
    members = []
    for person in range(_ORG_PEOPLE - 1):
        users.append(sign_up(person))
        members.append(join(users[-1]))
    at = story.tick()
    admin = membership_object(
        organization=organization,
        user=users[0],
        membership_id=members[0]["id"],
        role="org:admin",
        created_at=members[0]["created_at"],
        updated_at=at,
    )
    story.send("organizationMembership.updated", admin, at)

    at = story.tick()
    invitation = invitation_object(
        organization=organization,
        email_address=persona(_ORG_PEOPLE * index + _ORG_PEOPLE - 1)[2],
        inviter=users[0],
        created_at=at,
    )
    story.send("organizationInvitation.created", invitation, at)
    at = story.tick()
    accepted = invitation_object(
        organization=organization,
        email_address=invitation["email_address"],
        invitation_id=invitation["id"],
        status="accepted",
        inviter=users[0],
        user_id=new_id("user"),
        created_at=invitation["created_at"],
        updated_at=at,
    )
    story.send("organizationInvitation.accepted", accepted, at)
    join(sign_up(_ORG_PEOPLE - 1, user_id=accepted["user_id"]))

    story.send("organizationMembership.deleted", admin, story.tick())
    stub = deleted_object("organization", organization["id"], slug=organization["slug"])
    story.send("organization.deleted", stub, story.tick())
    return story.steps


SCENARIOS: dict[str, Story | Script] = {
    "lifecycle": Story(("user.created", "user.updated", "user.deleted")),
    "org-lifecycle": Script(
        "organization.created; 3 × (user.created → organizationMembership.created, org:member); "
        "one promoted to org:admin (.updated); they invite a 4th (organizationInvitation.created "
        "→ .accepted → user.created → organizationMembership.created); the admin leaves "
        "(organizationMembership.deleted, updated_at not bumped); organization.deleted — "
        "14 events, per organization",
        org_lifecycle,
    ),
}


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


def _scenario(options: PlanOptions) -> Story | Script:
    if options.event_type and options.scenario:
        raise InvalidParameter("Give either an EVENT_TYPE or --scenario, not both.")
    if options.scenario:
        found = SCENARIOS.get(options.scenario)
        if found is None:
            raise InvalidParameter(
                f"Unknown scenario {options.scenario!r}: the known ones are "
                f"{', '.join(sorted(SCENARIOS))}."
            )
        return found
    if not options.event_type:
        raise InvalidParameter(
            f"Give an EVENT_TYPE ({', '.join(fixture_types())}) or --scenario "
            f"({', '.join(sorted(SCENARIOS))}); --list shows them."
        )
    if fixture_for(options.event_type) is None:
        raise InvalidParameter(unknown_type_message(options.event_type))
    return Story((options.event_type,))


def _check_options(options: PlanOptions, scenario: Story | Script) -> Fixture | None:
    """Refuse options that cannot go together; the fixture of the stale update, if any."""
    if options.count < 1:
        raise InvalidParameter("--count must be at least 1.")
    if isinstance(scenario, Script):
        if options.user_id is not None:
            raise InvalidParameter(
                f"--scenario {options.scenario} makes its own organization and users, so "
                "--user-id has nothing to name: leave it out (--count N makes N of them)."
            )
        if options.stale:
            raise InvalidParameter(
                f"--stale re-sends an older version of one subject, and --scenario "
                f"{options.scenario} is about several: use it with an EVENT_TYPE or "
                "--scenario lifecycle."
            )
    if options.user_id is not None and options.count > 1:
        raise InvalidParameter(
            "--user-id names one user and --count N sends to N distinct users: use one of them."
        )
    if options.bad_signature and options.expired:
        raise InvalidParameter("Use --bad-signature or --expired, not both: each aims at one 401.")
    if not options.stale or isinstance(scenario, Script):
        return None
    resource = scenario.types[0].split(".")[0]
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
    scenario = _scenario(options)
    stale_fixture = _check_options(options, scenario)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    start = now - _STORY_START_MS
    signing: Signing = (
        "wrong-secret" if options.bad_signature else "expired" if options.expired else "valid"
    )
    deliveries: list[Planned] = []
    for index in range(options.count):
        if isinstance(scenario, Script):
            steps = scenario.play(index, start)
        else:
            steps = _subject_steps(scenario, options.user_id, index, start, stale_fixture)
        for step in steps:
            for override in options.overrides:
                apply_override(step.event, override)
            body = encode(step.event)
            deliveries.append(
                Planned(step.event_type, step.subject_id, new_msg_id(), body, signing, step.note)
            )
    if options.duplicate:
        deliveries = [again for d in deliveries for again in (d, d)]
    if options.shuffle:
        (rng or random.Random()).shuffle(deliveries)  # noqa: S311 - an order, not a secret
    return _mark_copies(deliveries)


def _subject_steps(
    story: Story, subject_id: str | None, index: int, start: int, stale: Fixture | None
) -> list[Step]:
    """One subject's story, each event built by its catalog fixture."""
    first = fixture_for(story.types[0])
    assert first is not None
    subject_id = subject_id or new_id(first.id_prefix)
    timeline = [(t, start + (n + 1) * _STEP_MS, "") for n, t in enumerate(story.types)]
    if stale is not None:
        timeline = _with_stale(timeline, stale.event_type, start)
    steps = []
    for event_type, at_ms, note in timeline:
        fixture = fixture_for(event_type)
        assert fixture is not None
        event = fixture.build(Subject(subject_id, index, start, at_ms))
        steps.append(Step(event_type, subject_id, event, note))
    return steps


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
