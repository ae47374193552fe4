"""The batch path's statements on a SQLite file and PostgreSQL: one object written many times in
one batch (the *layers* of ``plan_sql.run_steps``), a refused upsert's reason asked right after
it, every run of a batch in one :func:`writes.run`, and bodies stored compressed with lz4 on
PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from clerk_sync.devtools import encode, membership_object, organization_object, user_object
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store import writes
from tests.helpers import tables as t
from tests.helpers.entity_cases import T0, event, log_row, row, snapshot


def _later(obj: dict[str, Any], ms: int, **changes: Any) -> dict[str, Any]:
    return {**obj, **changes, "updated_at": ms}


def _history(tag: str) -> list[Delivery]:
    """One organization written by seven deliveries of two kinds: created, then embedded in
    memberships and updated, out of order (``tag`` in every id)."""
    return [
        Delivery(svix_id.replace("TAG", tag), body.replace(b"TAG", tag.encode()), T0 + 10_000)
        for svix_id, body in _HISTORY
    ]


def _template() -> list[tuple[str, bytes]]:
    org = organization_object(org_id="org_TAG", name="Acme", updated_at=T0)
    ada = user_object(user_id="user_TAG_ada", updated_at=T0)
    grace = user_object(user_id="user_TAG_grace", email="grace@example.com", updated_at=T0)
    m_ada = membership_object(
        organization=_later(org, T0 + 300, name="Acme 3"),
        user=ada,
        membership_id="orgmem_TAG_ada",
        updated_at=T0 + 10,
    )
    m_grace = membership_object(
        organization=_later(org, T0 + 100, name="Acme 1"),
        user=grace,
        membership_id="orgmem_TAG_grace",
        updated_at=T0 + 20,
    )
    bodies = [
        event("user.created", ada),
        event("user.created", grace),
        event("organization.created", org),
        event("organizationMembership.created", m_ada),  # embeds the organization at +300
        event("organization.updated", _later(org, T0 + 200, name="Acme 2")),  # stale: +300 came
        event("organizationMembership.created", m_grace),  # embeds +100: changes nothing
        event("organization.updated", _later(org, T0 + 400, name="Acme 4")),
        event("user.updated", _later(grace, T0 + 50, first_name="G.")),
        event("organization.updated", _later(org, T0 + 350, name="Acme 3.5")),  # stale: +400
        event("organizationMembership.updated", _later(m_ada, T0 + 500, role="org:admin")),
    ]
    return [(f"msg_TAG_{n:02}", encode(body)) for n, body in enumerate(bodies)]


_HISTORY = _template()


def _outcomes(results: list[Any], tag: str) -> list[tuple[Any, ...]]:
    assert all(isinstance(r, Outcome) for r in results), results
    return [
        (r.status, r.duplicate, (r.reason or "").replace(tag, "TAG"), r.error_code) for r in results
    ]


def _state(engine: Engine, tag: str) -> str:
    """The rows about one copy of the history, with its tag written back."""
    mine = {name: [r for r in value if tag in repr(r)] for name, value in snapshot(engine).items()}
    return repr(mine).replace(tag, "TAG")


def test_one_object_written_many_times_in_a_batch_ends_as_one_at_a_time(
    receiver: Receiver, observer: Engine
) -> None:
    single = [receiver.receive(d) for d in _history("qone")]
    batch = receiver.receive_batch(_history("qmany"))

    assert _outcomes(batch, "qmany") == _outcomes(single, "qone")
    assert _state(observer, "qmany") == _state(observer, "qone")
    assert [o.status for o in batch] == ["processed"] * 4 + [  # type: ignore[union-attr]
        "stale",
        "processed",
        "processed",
        "processed",
        "stale",
        "processed",
    ]
    # Each stale reason names the version stored when it was refused, not the batch's last.
    assert log_row(observer, "msg_qmany_04")["error"] == (
        f"updated_at {T0 + 200} is not newer than the stored {T0 + 300}"
    )
    assert log_row(observer, "msg_qmany_08")["error"] == (
        f"updated_at {T0 + 350} is not newer than the stored {T0 + 400}"
    )
    org = row(observer, t.organizations_table, "org_qmany")
    assert org is not None
    assert org["name"] == "Acme 4"


def test_a_batch_without_hooks_runs_its_statements_in_one_go(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run of a batch (a delete starts one) goes in one ``writes.run`` — one round trip
    on PostgreSQL, after the locks in the same one; a status to correct (stale) in a second."""
    calls: list[int] = []
    real = writes.run

    def counted(conn: Any, steps: Any) -> Any:
        calls.append(len(steps))
        return real(conn, steps)

    monkeypatch.setattr(writes, "run", counted)
    users = [user_object(user_id=f"user_rt_{n}", updated_at=T0 + n) for n in range(6)]
    deliveries = [
        Delivery(f"msg_rt_c{n}", encode(event("user.created", u))) for n, u in enumerate(users)
    ]
    deliveries.insert(
        3,
        Delivery(
            "msg_rt_gone",
            encode(event("user.deleted", {"id": "user_rt_0", "deleted": True, "object": "user"})),
        ),
    )
    deliveries.append(
        Delivery("msg_rt_u", encode(event("user.updated", _later(users[1], T0 + 99))))
    )
    results = receiver.receive_batch(deliveries)
    assert [r.status for r in results] == ["processed"] * 8  # type: ignore[union-attr]
    assert len(calls) == 1
    assert calls[0] > len(deliveries)

    calls.clear()
    older = _later(users[2], T0 - 1)
    again = receiver.receive_batch([Delivery("msg_rt_old", encode(event("user.updated", older)))])
    assert [r.status for r in again] == ["stale"]  # type: ignore[union-attr]
    assert len(calls) == 2


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_stores_bodies_compressed_with_lz4(receiver: Receiver, observer: Engine) -> None:
    """Bodies and objects of ~2 KB are past PostgreSQL's compression threshold: the engine asks
    for lz4, which costs a fraction of pglz's CPU."""
    big = user_object(user_id="user_lz4", updated_at=T0)
    big["public_metadata"] = {"notes": "a fairly long note " * 200}
    assert receiver.receive(Delivery("msg_lz4", encode(event("user.created", big)))).accepted
    with observer.connect() as conn:
        payload = conn.execute(
            text("SELECT pg_column_compression(payload) FROM events WHERE svix_id = 'msg_lz4'")
        ).scalar()
        data = conn.execute(
            text("SELECT pg_column_compression(data) FROM users WHERE id = 'user_lz4'")
        ).scalar()
    assert (payload, data) == ("lz4", "lz4")
