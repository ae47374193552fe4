"""End to end, every synced kind: a real ``clerk-sync serve`` per backend (one for the whole
module), svix-signed deliveries over HTTP, results read through a second engine.

Each kind is created, updated, sent again with the same svix id (a duplicate), sent an older
version after the newer one (``stale``) and — when Clerk has a delete event for it — deleted,
after which a late update is ``stale`` too. Then the cascades: ``organization.deleted`` takes
its memberships, invitations and domains, ``user.deleted`` its memberships, sessions and
accepted invitations. Ids are fresh per test, so the tests share the server and its database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, Table, select

from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    domain_object,
    envelope,
    invitation_object,
    membership_object,
    organization_object,
    permission_object,
    role_object,
    session_object,
    user_object,
    waitlist_entry_object,
)
from clerk_sync.entities import handled_types, kind_named, kinds
from clerk_sync.store import make_engine
from tests.conftest import BACKENDS, SECRET, migrated_database, signed
from tests.e2e.server import ServerProcess
from tests.helpers.tables import (
    domains_table,
    events_table,
    invitations_table,
    memberships_table,
    organizations_table,
    permissions_table,
    roles_table,
    sessions_table,
    tombstones_table,
    users_table,
    waitlist_table,
)

ADMIN_TOKEN = "e2e-entities-admin-token-0123"
T0 = 1_744_400_000_000
LATER = T0 + 60_000


@dataclass(frozen=True)
class Deployment:
    server: ServerProcess
    observer: Engine
    """A second engine, not the server's: what it reads has been committed."""

    def deliver(self, event: dict[str, Any] | bytes) -> Delivered:
        """Sign now (svix's signer) and POST as a new message."""
        body, headers = signed(event)
        return Delivered(body, headers, self.server.post(body, headers))

    def row(self, table: Table, object_id: str) -> dict[str, Any] | None:
        with self.observer.connect() as conn:
            found = conn.execute(select(table).where(table.c.id == object_id)).first()
        return dict(found._mapping) if found else None

    def ids(self, table: Table, column: str, value: str) -> set[str]:
        with self.observer.connect() as conn:
            rows = conn.execute(select(table.c.id).where(table.c[column] == value))
            return {r.id for r in rows}

    def event_row(self, svix_id: str) -> dict[str, Any]:
        with self.observer.connect() as conn:
            found = conn.execute(select(events_table).where(events_table.c.svix_id == svix_id))
            row = found.first()
        assert row is not None, svix_id
        return dict(row._mapping)

    def tombstone(self, kind: str, object_id: str) -> dict[str, Any] | None:
        t = tombstones_table
        with self.observer.connect() as conn:
            found = conn.execute(select(t).where(t.c.kind == kind, t.c.id == object_id)).first()
        return dict(found._mapping) if found else None


@dataclass(frozen=True)
class Delivered:
    body: bytes
    headers: dict[str, str]
    response: httpx.Response

    @property
    def svix_id(self) -> str:
        return self.headers["svix-id"]

    def answered(self, status: str, *, duplicate: bool = False) -> dict[str, Any]:
        assert self.response.status_code == 200, self.response.text
        answer: dict[str, Any] = self.response.json()
        assert (answer["status"], answer["duplicate"]) == (status, duplicate), answer
        return answer


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp(f"entities-{request.param}")
    url = migrated_database(request.param, workdir, request)
    observer = make_engine(url)
    try:
        with ServerProcess(
            database_url=url, secret=SECRET, admin_token=ADMIN_TOKEN, workdir=workdir / "srv"
        ) as server:
            yield Deployment(server, observer)
            log = server.stderr_text()
            assert "Traceback" not in log, log
    finally:
        observer.dispose()


# -- one case per kind -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kind's story: ``first`` and a newer ``second`` version of one object."""

    kind: str
    table: Table
    created: str
    """The event type that creates it."""
    changed: str
    """The event type that brings ``second`` (``.updated``, or ``.accepted``, ``.ended``…)."""
    first: dict[str, Any]
    second: dict[str, Any]
    column: str
    """A column whose value differs between the two versions."""
    values: tuple[Any, Any]
    deleted: Callable[[dict[str, Any]], dict[str, Any]] | None
    """The delete event for the object, or None: Clerk sends none for the kind."""

    @property
    def id(self) -> str:
        return str(self.first["id"])


def _newer(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**obj, **changes, "updated_at": LATER}


def _stub(kind_object: str, **extra: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def deleted(obj: dict[str, Any]) -> dict[str, Any]:
        event_type = {"organization_domain": "organizationDomain"}.get(kind_object, kind_object)
        return envelope(f"{event_type}.deleted", deleted_object(kind_object, obj["id"], **extra))

    return deleted


def _user_case() -> Case:
    first = user_object(first_name="Ada", created_at=T0, updated_at=T0)
    return Case(
        "user",
        users_table,
        "user.created",
        "user.updated",
        first,
        _newer(first, first_name="Augusta"),
        "first_name",
        ("Ada", "Augusta"),
        lambda obj: deleted_user_event(obj["id"]),
    )


def _organization_case() -> Case:
    first = organization_object(name="Acme", created_at=T0, updated_at=T0)
    return Case(
        "organization",
        organizations_table,
        "organization.created",
        "organization.updated",
        first,
        _newer(first, name="Acme Corporation"),
        "name",
        ("Acme", "Acme Corporation"),
        _stub("organization", slug="acme"),
    )


def _membership_case() -> Case:
    org = organization_object(created_at=T0 - 10, updated_at=T0 - 10)
    user = user_object(created_at=T0 - 10, updated_at=T0 - 10)
    first = membership_object(organization=org, user=user, created_at=T0, updated_at=T0)
    second = _newer(first, role="org:admin", role_name="Admin")
    return Case(
        "organization_membership",
        memberships_table,
        "organizationMembership.created",
        "organizationMembership.updated",
        first,
        second,
        "role",
        ("org:member", "org:admin"),
        # Clerk sends the full membership, updated_at not bumped.
        lambda obj: envelope("organizationMembership.deleted", obj),
    )


def _invitation_case() -> Case:
    org = organization_object(created_at=T0 - 10, updated_at=T0 - 10)
    first = invitation_object(
        organization=org, email_address="grace@example.com", created_at=T0, updated_at=T0
    )
    second = _newer(first, status="accepted", user_id=user_object()["id"])
    return Case(
        "organization_invitation",
        invitations_table,
        "organizationInvitation.created",
        "organizationInvitation.accepted",
        first,
        second,
        "status",
        ("pending", "accepted"),
        None,
    )


def _domain_case() -> Case:
    org = organization_object(created_at=T0 - 10, updated_at=T0 - 10)
    first = domain_object(organization=org, created_at=T0, updated_at=T0)
    return Case(
        "organization_domain",
        domains_table,
        "organizationDomain.created",
        "organizationDomain.updated",
        first,
        _newer(first, enrollment_mode="automatic_suggestion"),
        "enrollment_mode",
        ("automatic_invitation", "automatic_suggestion"),
        _stub("organization_domain"),
    )


def _role_case() -> Case:
    first = role_object(name="Billing", created_at=T0, updated_at=T0)
    return Case(
        "role",
        roles_table,
        "role.created",
        "role.updated",
        first,
        _newer(first, name="Billing admin"),
        "name",
        ("Billing", "Billing admin"),
        _stub("role"),
    )


def _permission_case() -> Case:
    first = permission_object(name="Read invoices", created_at=T0, updated_at=T0)
    return Case(
        "permission",
        permissions_table,
        "permission.created",
        "permission.updated",
        first,
        _newer(first, name="Read all invoices"),
        "name",
        ("Read invoices", "Read all invoices"),
        _stub("permission"),
    )


def _session_case() -> Case:
    user = user_object(created_at=T0 - 10, updated_at=T0 - 10)
    first = session_object(user=user, created_at=T0, updated_at=T0)
    return Case(
        "session",
        sessions_table,
        "session.created",
        "session.ended",
        first,
        _newer(first, status="ended"),
        "status",
        ("active", "ended"),
        None,
    )


def _waitlist_case() -> Case:
    first = waitlist_entry_object(created_at=T0, updated_at=T0)
    invited = waitlist_entry_object(entry_id=first["id"], invited_at=LATER, created_at=T0)
    return Case(
        "waitlist_entry",
        waitlist_table,
        "waitlistEntry.created",
        "waitlistEntry.updated",
        first,
        _newer(invited),
        "status",
        ("pending", "invited"),
        None,
    )


CASES: dict[str, Callable[[], Case]] = {
    "user": _user_case,
    "organization": _organization_case,
    "organization_membership": _membership_case,
    "organization_invitation": _invitation_case,
    "organization_domain": _domain_case,
    "role": _role_case,
    "permission": _permission_case,
    "session": _session_case,
    "waitlist_entry": _waitlist_case,
}


def test_every_synced_kind_has_a_case() -> None:
    assert set(CASES) == {k.name for k in kinds()}
    for name, build in CASES.items():
        case = build()
        kind = kind_named(name)
        assert case.kind == name
        assert case.table.name == kind.table
        assert {case.created, case.changed} <= set(kind.event_types())
        has_delete = f"{kind.events}.deleted" in handled_types()
        assert (case.deleted is not None) == has_delete, name
        if case.deleted is not None:
            assert case.deleted(case.second)["type"] == f"{kind.events}.deleted"


@pytest.mark.parametrize("name", list(CASES))
def test_kind_lifecycle(deployment: Deployment, name: str) -> None:
    case = CASES[name]()
    first_value, second_value = case.values

    created = deployment.deliver(envelope(case.created, case.first, T0))
    created.answered("processed")
    row = deployment.row(case.table, case.id)
    assert row is not None
    assert (row[case.column], row["updated_at"]) == (first_value, T0)
    event = deployment.event_row(created.svix_id)
    assert (event["type"], event["subject_id"], event["status"]) == (
        case.created,
        case.id,
        "processed",
    )

    changed = deployment.deliver(envelope(case.changed, case.second, LATER))
    changed.answered("processed")
    row = deployment.row(case.table, case.id)
    assert row is not None
    assert (row[case.column], row["updated_at"]) == (second_value, LATER)
    assert row["created_at"] == T0

    # Svix retries the same message: same svix id, same bytes.
    again = deployment.server.post(changed.body, changed.headers)
    Delivered(changed.body, changed.headers, again).answered("processed", duplicate=True)
    event = deployment.event_row(changed.svix_id)
    assert (event["delivery_count"], event["status"]) == (2, "processed")

    # The older version arrives after the newer one, as a new message: it does not win.
    late = deployment.deliver(created.body)
    assert "not newer" in late.answered("stale")["reason"]
    assert deployment.event_row(late.svix_id)["status"] == "stale"
    row = deployment.row(case.table, case.id)
    assert row is not None
    assert (row[case.column], row["updated_at"]) == (second_value, LATER)

    if case.deleted is None:
        return
    gone = deployment.deliver(case.deleted(case.second))
    gone.answered("processed")
    assert deployment.row(case.table, case.id) is None
    assert deployment.tombstone(case.kind, case.id) is not None
    retried = deployment.server.post(gone.body, gone.headers)
    Delivered(gone.body, gone.headers, retried).answered("processed", duplicate=True)
    # An update newer than anything stored, after the delete: the delete wins.
    newest = {**case.second, "updated_at": LATER + 60_000}
    deployment.deliver(envelope(case.changed, newest)).answered("stale")
    assert deployment.row(case.table, case.id) is None


def test_organization_deleted_takes_its_memberships_invitations_and_domains(
    deployment: Deployment,
) -> None:
    doomed = organization_object(name="Doomed", created_at=T0, updated_at=T0)
    kept = organization_object(name="Kept", created_at=T0, updated_at=T0)
    ada = user_object(created_at=T0, updated_at=T0)
    bob = user_object(email="bob@example.com", created_at=T0, updated_at=T0)
    events = [
        envelope("organization.created", doomed),
        envelope("organization.created", kept),
        envelope("user.created", ada),
        envelope("user.created", bob),
    ]
    for org in (doomed, kept):
        for user in (ada, bob):
            membership = membership_object(
                organization=org, user=user, created_at=T0, updated_at=T0 + 1
            )
            events.append(envelope("organizationMembership.created", membership))
        invitation = invitation_object(
            organization=org, email_address="carol@example.com", created_at=T0, updated_at=T0 + 2
        )
        events.append(envelope("organizationInvitation.created", invitation))
        domain = domain_object(
            organization=org, name=f"{org['slug']}.example", created_at=T0, updated_at=T0 + 3
        )
        events.append(envelope("organizationDomain.created", domain))
    for event in events:
        deployment.deliver(event).answered("processed")
    children = (memberships_table, invitations_table, domains_table)
    for org in (doomed, kept):
        counts = [len(deployment.ids(t, "organization_id", org["id"])) for t in children]
        assert counts == [2, 1, 1], org["name"]

    stub = deleted_object("organization", doomed["id"], slug=doomed["slug"])
    deployment.deliver(envelope("organization.deleted", stub)).answered("processed")

    assert deployment.row(organizations_table, doomed["id"]) is None
    for table in children:
        assert deployment.ids(table, "organization_id", doomed["id"]) == set(), table.name
    counts = [len(deployment.ids(t, "organization_id", kept["id"])) for t in children]
    assert counts == [2, 1, 1]
    assert deployment.row(organizations_table, kept["id"]) is not None
    for user in (ada, bob):  # the members themselves stay
        assert deployment.row(users_table, user["id"]) is not None
        assert len(deployment.ids(memberships_table, "user_id", user["id"])) == 1
    # A membership in the deleted organization that arrives late is not stored.
    late = membership_object(organization=doomed, user=ada, updated_at=LATER)
    deployment.deliver(envelope("organizationMembership.created", late)).answered("stale")
    assert deployment.ids(memberships_table, "organization_id", doomed["id"]) == set()


def test_user_deleted_takes_its_memberships_and_sessions(deployment: Deployment) -> None:
    org = organization_object(created_at=T0, updated_at=T0)
    ada = user_object(created_at=T0, updated_at=T0)
    bob = user_object(email="bob@example.com", created_at=T0, updated_at=T0)
    events = [
        envelope("organization.created", org),
        envelope("user.created", ada),
        envelope("user.created", bob),
    ]
    for user in (ada, bob):
        membership = membership_object(
            organization=org, user=user, created_at=T0, updated_at=T0 + 1
        )
        events.append(envelope("organizationMembership.created", membership))
        for n in range(2):
            session = session_object(user=user, created_at=T0, updated_at=T0 + 2 + n)
            events.append(envelope("session.created", session))
        accepted = invitation_object(
            organization=org,
            email_address=_email(user),
            status="accepted",
            user_id=user["id"],
            created_at=T0,
            updated_at=T0 + 5,
        )
        events.append(envelope("organizationInvitation.accepted", accepted))
    for event in events:
        deployment.deliver(event).answered("processed")
    for user in (ada, bob):
        assert len(deployment.ids(memberships_table, "user_id", user["id"])) == 1
        assert len(deployment.ids(sessions_table, "user_id", user["id"])) == 2
        assert len(deployment.ids(invitations_table, "user_id", user["id"])) == 1

    deployment.deliver(deleted_user_event(ada["id"])).answered("processed")

    assert deployment.row(users_table, ada["id"]) is None
    assert deployment.tombstone("user", ada["id"]) is not None
    for table in (memberships_table, sessions_table, invitations_table):
        assert deployment.ids(table, "user_id", ada["id"]) == set(), table.name
        assert len(deployment.ids(table, "user_id", bob["id"])) >= 1, table.name
    assert deployment.row(organizations_table, org["id"]) is not None
    assert deployment.ids(memberships_table, "organization_id", org["id"]) == (
        deployment.ids(memberships_table, "user_id", bob["id"])
    )
    # A session of the deleted user that arrives late is not stored, nor brings the user back.
    late = session_object(user={**ada, "updated_at": LATER}, updated_at=LATER)
    deployment.deliver(envelope("session.created", late)).answered("stale")
    assert deployment.ids(sessions_table, "user_id", ada["id"]) == set()
    assert deployment.row(users_table, ada["id"]) is None


def test_read_api_shows_what_was_synced(deployment: Deployment) -> None:
    """The new routes on the real server, through its HTTP stack (ids with a ``/`` too)."""
    user = user_object(user_id="user/e2e", email="e2e@example.com", created_at=T0, updated_at=T0)
    org = organization_object(org_id="org/e2e", created_at=T0, updated_at=T0)
    membership = membership_object(organization=org, user=user, created_at=T0, updated_at=T0 + 1)
    session = session_object(user=user, updated_at=T0 + 2)
    for event in (
        envelope("user.created", user),
        envelope("organization.created", org),
        envelope("organizationMembership.created", membership),
        envelope("session.created", session),
    ):
        deployment.deliver(event).answered("processed")
    server = deployment.server

    def get(path: str) -> Any:
        response = server.get(path, token=ADMIN_TOKEN)
        assert response.status_code == 200, f"{path}: {response.text}"
        return response.json()

    assert get("/api/organizations/org%2Fe2e")["updated_at"] == T0
    members = get("/api/organizations/org%2Fe2e/memberships")["data"]
    assert [(m["id"], m["user_id"]) for m in members] == [(membership["id"], "user/e2e")]
    assert [m["id"] for m in get("/api/users/user%2Fe2e/memberships")["data"]] == [membership["id"]]
    sessions = get("/api/users/user%2Fe2e/sessions")["data"]
    assert [s["id"] for s in sessions] == [session["id"]]
    one = get(f"/api/sessions/{session['id']}")
    for key in ("last_active_at", "expire_at", "created_at", "updated_at"):
        assert one[key] == session[key], key
    assert [u["id"] for u in get("/api/users?email=e2e%40example.com")["data"]] == ["user/e2e"]
    assert server.get("/api/sessions/sess_nope", token=ADMIN_TOKEN).status_code == 404
    assert server.get("/api/organizations/org%2Fe2e").status_code == 401
    response = server.get("/api/organizations?bogus=1", token=ADMIN_TOKEN)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"


def _email(user: dict[str, Any]) -> str:
    primary = user["primary_email_address_id"]
    return next(e["email_address"] for e in user["email_addresses"] if e["id"] == primary)
