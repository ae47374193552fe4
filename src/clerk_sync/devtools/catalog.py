"""The events ``clerk-sync trigger`` can send: one fixture builder per event type.

Every type clerk-sync handles (:func:`clerk_sync.handled_types`) must have a fixture here —
a test fails otherwise — so a new handler arrives with an event to try it with: register its
builder with :func:`fixture`. A builder returns the envelope exactly as Clerk POSTs it (shapes
from :mod:`clerk_sync.devtools.fixtures`) for one :class:`Subject` at one instant; the caller
serializes it once and signs those bytes. The subject is the object the event is about
(``data.id``); what it refers to — a membership's organization and user, a session's user — is
made up fresh for each build. Stories where those agree across events are
:mod:`clerk_sync.devtools.scenarios`' job. A few types clerk-sync ignores (``email.created``,
``sms.created``, ``subscription.created``) are here too, to see them recorded as ``ignored``.

``clerkSync.ping`` is clerk-sync's own probe, not a Clerk event: no handler will ever claim it,
so it is recorded as ``ignored`` and writes no user. ``clerk-sync doctor`` sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..events import PING_TYPE
from .fixtures import (
    deleted_object,
    deleted_user_event,
    domain_object,
    envelope,
    invitation_object,
    membership_object,
    new_id,
    organization_object,
    permission_object,
    role_object,
    session_object,
    user_event,
    user_object,
    waitlist_entry_object,
)

_PERSONAS = (
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Katherine", "Johnson"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Margaret", "Hamilton"),
    ("Donald", "Knuth"),
)
_ORGANIZATIONS = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Hooli",
    "Vandelay Industries",
    "Wonka Industries",
    "Tyrell Corp",
    "Soylent",
)
DELIVERY_LAG_MS = 14
"""Clerk stamps the envelope a few ms after the change (``timestamp`` vs ``data.updated_at``)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who an event is about and when: what a builder needs to make it realistic."""

    id: str
    index: int
    """Position among the subjects of one ``trigger --count N`` run (picks a persona)."""
    created_ms: int
    at_ms: int
    """When this change happened: ``data.updated_at`` for versioned objects."""


Builder = Callable[[Subject], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Fixture:
    """How to build one event type, and what ``trigger --list`` says about it."""

    event_type: str
    summary: str
    id_prefix: str
    versioned: bool
    """True when ``data.updated_at`` orders it (so an older copy is stale)."""
    build: Builder


_FIXTURES: dict[str, Fixture] = {}


def fixture(
    event_type: str, *, summary: str, id_prefix: str = "user", versioned: bool = False
) -> Callable[[Builder], Builder]:
    """Register the decorated builder for ``event_type``; a second one for a type is an error."""

    def register(build: Builder) -> Builder:
        if event_type in _FIXTURES:
            raise ValueError(f"{event_type!r} already has a fixture")
        _FIXTURES[event_type] = Fixture(event_type, summary, id_prefix, versioned, build)
        return build

    return register


def data_fixture(
    event_type: str, *, summary: str, id_prefix: str, versioned: bool = False
) -> Callable[[Builder], Builder]:
    """Like :func:`fixture`, for a builder of ``data`` alone: the envelope around it is stamped
    :data:`DELIVERY_LAG_MS` after the change, as Clerk stamps it."""

    def register(build: Builder) -> Builder:
        def build_event(subject: Subject) -> dict[str, Any]:
            return envelope(event_type, build(subject), stamp(subject))

        fixture(event_type, summary=summary, id_prefix=id_prefix, versioned=versioned)(build_event)
        return build

    return register


def fixture_for(event_type: str) -> Fixture | None:
    return _FIXTURES.get(event_type)


def fixture_types() -> list[str]:
    return sorted(_FIXTURES)


def all_fixtures() -> list[Fixture]:
    return [_FIXTURES[name] for name in fixture_types()]


def persona(index: int) -> tuple[str, str, str]:
    """First name, last name and e-mail of the ``index``-th made-up user."""
    first, last = _PERSONAS[index % len(_PERSONAS)]
    round_ = index // len(_PERSONAS)
    suffix = f"+{round_}" if round_ else ""
    return first, last, f"{first}.{last}{suffix}@example.com".lower()


def organization_persona(index: int) -> tuple[str, str]:
    """Name and slug of the ``index``-th made-up organization."""
    round_ = index // len(_ORGANIZATIONS)
    name = _ORGANIZATIONS[index % len(_ORGANIZATIONS)] + (f" {round_ + 1}" if round_ else "")
    return name, "-".join(name.lower().split())


def stamp(subject: Subject) -> int:
    """The envelope ``timestamp`` of a change at ``subject.at_ms``."""
    return subject.at_ms + DELIVERY_LAG_MS


def persona_user(subject: Subject) -> dict[str, Any]:
    """The full User object of the subject's persona, as it is at ``subject.at_ms``."""
    first, last, email = persona(subject.index)
    return user_object(
        user_id=subject.id,
        email=email,
        first_name=first,
        last_name=last,
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


@fixture(
    "user.created",
    summary="a sign-up: the full User object, primary e-mail verified by code",
    versioned=True,
)
def user_created(subject: Subject) -> dict[str, Any]:
    return user_event("user.created", persona_user(subject), stamp(subject))


@fixture(
    "user.updated",
    summary="the same user later: signed in, username and public metadata set",
    versioned=True,
)
def user_updated(subject: Subject) -> dict[str, Any]:
    user = persona_user(subject)
    first, last, _ = persona(subject.index)
    user["username"] = f"{first}{last[0]}".lower()
    user["public_metadata"] = {"plan": "pro"}
    user["last_sign_in_at"] = subject.created_ms + 1_512
    return user_event("user.updated", user, stamp(subject))


@fixture("user.deleted", summary="the deleted-object stub Clerk sends: {deleted, id, object}")
def user_deleted(subject: Subject) -> dict[str, Any]:
    return deleted_user_event(subject.id, timestamp=stamp(subject))


def _stub_fixture(event_type: str, kind_object: str, id_prefix: str) -> None:
    """A delete Clerk sends as the DeletedObject stub ``{object, id, deleted}``."""
    summary = "the deleted-object stub: {object, id, deleted}"
    data_fixture(event_type, summary=summary, id_prefix=id_prefix)(
        lambda subject: deleted_object(kind_object, subject.id)
    )


def _organization(subject: Subject, *, org_id: str | None = None) -> dict[str, Any]:
    """The subject's organization (or, given ``org_id``, the one a related object is in)."""
    name, slug = organization_persona(subject.index)
    return organization_object(
        org_id=org_id or subject.id,
        name=name,
        slug=slug,
        created_by=new_id("user"),
        members_count=1,
        created_at=subject.created_ms,
        updated_at=subject.created_ms if org_id else subject.at_ms,
    )


def _related_organization(subject: Subject) -> dict[str, Any]:
    return _organization(subject, org_id=new_id("org"))


def _related_user(subject: Subject) -> dict[str, Any]:
    return persona_user(
        Subject(new_id("user"), subject.index, subject.created_ms, subject.created_ms)
    )


@data_fixture(
    "organization.created",
    summary="a new organization: its creator in created_by, one member",
    id_prefix="org",
    versioned=True,
)
def organization_created(subject: Subject) -> dict[str, Any]:
    return _organization(subject)


@data_fixture(
    "organization.updated",
    summary="the same organization later: public metadata set",
    id_prefix="org",
    versioned=True,
)
def organization_updated(subject: Subject) -> dict[str, Any]:
    return {**_organization(subject), "public_metadata": {"tier": "gold"}}


@data_fixture(
    "organization.deleted",
    summary="the deleted-object stub: {object, id, slug, deleted}",
    id_prefix="org",
)
def organization_deleted(subject: Subject) -> dict[str, Any]:
    return deleted_object("organization", subject.id, slug=organization_persona(subject.index)[1])


def _membership(subject: Subject, role: str, updated_at: int) -> dict[str, Any]:
    return membership_object(
        organization=_related_organization(subject),
        user=_related_user(subject),
        membership_id=subject.id,
        role=role,
        created_at=subject.created_ms,
        updated_at=updated_at,
    )


@data_fixture(
    "organizationMembership.created",
    summary="a user joins an organization as org:member (both embedded)",
    id_prefix="orgmem",
    versioned=True,
)
def membership_created(subject: Subject) -> dict[str, Any]:
    return _membership(subject, "org:member", subject.at_ms)


@data_fixture(
    "organizationMembership.updated",
    summary="the member is promoted to org:admin",
    id_prefix="orgmem",
    versioned=True,
)
def membership_updated(subject: Subject) -> dict[str, Any]:
    return _membership(subject, "org:admin", subject.at_ms)


@data_fixture(
    "organizationMembership.deleted",
    summary="the member leaves: the FULL membership, updated_at not bumped (the last version's)",
    id_prefix="orgmem",
)
def membership_deleted(subject: Subject) -> dict[str, Any]:
    return _membership(subject, "org:member", subject.created_ms)


def _invitation_fixture(event_type: str, status: str, summary: str) -> None:
    def build(subject: Subject) -> dict[str, Any]:
        return invitation_object(
            organization=_related_organization(subject),
            email_address=persona(subject.index)[2],
            invitation_id=subject.id,
            status=status,
            user_id=new_id("user") if status == "accepted" else None,
            created_at=subject.created_ms,
            updated_at=subject.at_ms,
        )

    data_fixture(event_type, summary=summary, id_prefix="orginv", versioned=True)(build)


_invitation_fixture(
    "organizationInvitation.created",
    "pending",
    "an invitation to join an organization, sent from the dashboard (status pending)",
)
_invitation_fixture(
    "organizationInvitation.accepted",
    "accepted",
    "the invitation accepted: status accepted, and the user_id of who accepted it",
)
_invitation_fixture(
    "organizationInvitation.revoked", "revoked", "the invitation revoked (status revoked)"
)


def _domain(subject: Subject, *, verified: bool) -> dict[str, Any]:
    organization = _related_organization(subject)
    return domain_object(
        organization=organization,
        name=f"{organization['slug']}.example",
        domain_id=subject.id,
        verified=verified,
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


@data_fixture(
    "organizationDomain.created",
    summary="a domain added to an organization, not verified yet",
    id_prefix="orgdmn",
    versioned=True,
)
def domain_created(subject: Subject) -> dict[str, Any]:
    return _domain(subject, verified=False)


@data_fixture(
    "organizationDomain.updated",
    summary="the domain verified by an e-mail code: people at it get invitations",
    id_prefix="orgdmn",
    versioned=True,
)
def domain_updated(subject: Subject) -> dict[str, Any]:
    return _domain(subject, verified=True)


_READ_INVOICES = ("org:invoices:read", "Read invoices")
_PAY_INVOICES = ("org:invoices:pay", "Pay invoices")


def _permission(subject: Subject, key: str, name: str) -> dict[str, Any]:
    return permission_object(
        permission_id=subject.id,
        key=key,
        name=name,
        description=f"{name} of the organization",
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


def _role(subject: Subject, *permissions: tuple[str, str]) -> dict[str, Any]:
    def granted() -> Subject:
        return Subject(new_id("perm"), 0, subject.created_ms, subject.created_ms)

    return role_object(
        role_id=subject.id,
        permissions=[_permission(granted(), *p) for p in permissions],
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


@data_fixture(
    "role.created",
    summary="a custom role (org:billing) with one permission",
    id_prefix="role",
    versioned=True,
)
def role_created(subject: Subject) -> dict[str, Any]:
    return _role(subject, _READ_INVOICES)


@data_fixture(
    "role.updated", summary="the role given a second permission", id_prefix="role", versioned=True
)
def role_updated(subject: Subject) -> dict[str, Any]:
    return _role(subject, _READ_INVOICES, _PAY_INVOICES)


@data_fixture(
    "permission.created",
    summary="a custom permission (org:invoices:read)",
    id_prefix="perm",
    versioned=True,
)
def permission_created(subject: Subject) -> dict[str, Any]:
    return _permission(subject, *_READ_INVOICES)


@data_fixture(
    "permission.updated", summary="the permission renamed", id_prefix="perm", versioned=True
)
def permission_updated(subject: Subject) -> dict[str, Any]:
    return _permission(subject, _READ_INVOICES[0], "See invoices")


_stub_fixture("organizationDomain.deleted", "organization_domain", "orgdmn")
_stub_fixture("role.deleted", "role", "role")
_stub_fixture("permission.deleted", "permission", "perm")


def _session_fixture(event_type: str, status: str, summary: str) -> None:
    def build(subject: Subject) -> dict[str, Any]:
        return session_object(
            user=_related_user(subject),
            session_id=subject.id,
            status=status,
            created_at=subject.created_ms,
            updated_at=subject.at_ms,
        )

    data_fixture(event_type, summary=summary, id_prefix="sess", versioned=True)(build)


_session_fixture("session.created", "active", "a sign-in: the Session, the full User in it")
_session_fixture("session.pending", "pending", "a session waiting on a task (status pending)")
_session_fixture("session.ended", "ended", "the user signed out (status ended)")
_session_fixture("session.removed", "removed", "the session removed from its client")
_session_fixture("session.revoked", "revoked", "the session revoked from the dashboard or API")


def _waitlist_entry(subject: Subject, *, invited: bool) -> dict[str, Any]:
    return waitlist_entry_object(
        entry_id=subject.id,
        email_address=persona(subject.index)[2],
        invited_at=subject.at_ms if invited else None,
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


@data_fixture(
    "waitlistEntry.created",
    summary="someone joins the waitlist (status pending)",
    id_prefix="wle",
    versioned=True,
)
def waitlist_entry_created(subject: Subject) -> dict[str, Any]:
    return _waitlist_entry(subject, invited=False)


@data_fixture(
    "waitlistEntry.updated",
    summary="the waitlist entry invited (status invited, with its invitation)",
    id_prefix="wle",
    versioned=True,
)
def waitlist_entry_updated(subject: Subject) -> dict[str, Any]:
    return _waitlist_entry(subject, invited=True)


@data_fixture(
    "email.created",
    summary="an e-mail Clerk sends (a verification code); no timestamps in data",
    id_prefix="ema",
)
def email_created(subject: Subject) -> dict[str, Any]:
    first, _, address = persona(subject.index)
    text = f"Hi {first}, 424242 is your verification code."
    return {
        "object": "email",
        "id": subject.id,
        "slug": "verification_code",
        "from_email_name": "notifications",
        "to_email_address": address,
        "email_address_id": new_id("idn"),
        "user_id": new_id("user"),
        "subject": "424242 is your verification code",
        "body": f"<p>{text}</p>",
        "body_plain": text,
        "status": "queued",
        "data": {"otp_code": "424242"},
        "delivered_by_clerk": True,
    }


@data_fixture(
    "sms.created",
    summary="an SMS Clerk sends (a verification code); created_at only",
    id_prefix="sms",
)
def sms_created(subject: Subject) -> dict[str, Any]:
    return {
        "object": "sms_message",
        "id": subject.id,
        "slug": "verification_code",
        "from_phone_number": "+15555550100",
        "to_phone_number": f"+1555555{subject.index % 10_000:04d}",
        "phone_number_id": new_id("idn"),
        "user_id": new_id("user"),
        "message": "424242 is your verification code",
        "status": "queued",
        "data": {},
        "delivered_by_clerk": True,
        "created_at": subject.at_ms,
    }


@data_fixture(
    "subscription.created",
    summary="a billing subscription started (commerce_subscription, active)",
    id_prefix="csub",
    versioned=True,
)
def subscription_created(subject: Subject) -> dict[str, Any]:
    first, last, email = persona(subject.index)
    payer_id = new_id("cpayer")
    return {
        "object": "commerce_subscription",
        "id": subject.id,
        "status": "active",
        "active_at": subject.created_ms,
        "canceled_at": None,
        "created_at": subject.created_ms,
        "ended_at": None,
        "past_due_at": None,
        "updated_at": subject.at_ms,
        "latest_payment_id": new_id("cpa"),
        "payer_id": payer_id,
        "payer": {
            "object": "commerce_payer",
            "id": payer_id,
            "user_id": new_id("user"),
            "first_name": first,
            "last_name": last,
            "email": email,
            "organization_id": "",
            "organization_name": "",
            "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
            "created_at": subject.created_ms,
            "updated_at": subject.created_ms,
        },
        "payment_source_id": new_id("cps"),
        "items": [],
    }


@fixture(
    PING_TYPE,
    summary="clerk-sync's own probe (doctor sends it): recorded as ignored, writes no user",
    id_prefix="ping",
)
def ping(subject: Subject) -> dict[str, Any]:
    data = {"id": subject.id, "object": "ping", "message": "clerk-sync round trip"}
    return envelope(PING_TYPE, data, subject.at_ms)
