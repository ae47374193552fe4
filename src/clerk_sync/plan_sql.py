"""A plan's writes as the store's statements: the SQL side of the entity core.

Each write carries its kind's declarations (table, parents, children, scrubs), so nothing here
asks which kind it holds: an upsert is one guarded statement; a delete is its tombstone, its
children's tombstones and cascades, the scrubs of rows naming it, the row, and — for a kind
with personal data — the erasure of every body naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .entities import Delete, Kind, Plan, Upsert, Write, children, scrubbed_by
from .store import writes


def write_steps(
    stmts: writes.Statements, plan: Plan, now_ms: int, svix_id: str
) -> list[writes.Step]:
    """The statements of a delivery's plan, in order; its own write first."""
    steps: list[writes.Step] = []
    for w in plan.writes:
        steps += steps_of(stmts, w, now_ms, svix_id)
    return steps


def steps_of(stmts: writes.Statements, w: Write, now_ms: int, svix_id: str) -> list[writes.Step]:
    entity = statements_of(stmts, w.kind)
    if isinstance(w, Upsert):
        return [(entity.upsert, entity.upsert_values(w.row, now_ms, svix_id))]
    steps: list[writes.Step] = [
        (stmts.tombstone, {"kind": w.kind.name, "id": w.id, "deleted_at": w.deleted_at})
    ]
    for child, column in children(w.kind):
        child_stmts = statements_of(stmts, child)
        steps.append(
            (
                child_stmts.cascade_tombstones[column],
                {"b_parent": w.id, "deleted_at": w.deleted_at},
            )
        )
        steps.append((child_stmts.cascades[column], {"b_parent": w.id}))
    for other, column in scrubbed_by(w.kind):
        steps.append((statements_of(stmts, other).scrubs[column], {"b_parent": w.id}))
    steps.append((entity.delete, {"id": w.id}))
    if w.kind.personal:
        steps.append((stmts.erase, {"b_user": w.id}))
        steps.append((stmts.erase_outbox, {"b_user": w.id}))
    return steps


def statements_of(stmts: writes.Statements, kind: Kind) -> writes.EntityStatements:
    return stmts.entity(kind.name, kind.parents, kind.scrubs)


def key(w: Write) -> str:
    return f"{w.kind.name}:{w.id}"


def starts_run(plan: Plan, owned: set[str]) -> bool:
    """Whether a delivery must wait for the run before it: the questions asked about a run's
    refused upserts (why: a tombstone, a newer version) are answered after the whole run, so
    no later delivery in it may delete anything or write an object an earlier one is about."""
    if isinstance(plan.writes[0], Delete):
        return True
    return any(key(w) in owned for w in plan.writes)


def erases(plan: Plan | None) -> bool:
    """Whether the plan deletes an object with personal data (a user)."""
    return plan is not None and any(isinstance(w, Delete) and w.kind.personal for w in plan.writes)


def applied(plan: Plan | None, results: list[list[Any]]) -> bool:
    """Whether the plan's own write took effect (the first statement's answer)."""
    if plan is None:
        return True
    return isinstance(plan.writes[0], Delete) or bool(results and results[0])


def parent_values(w: Upsert) -> dict[str, Any]:
    return {column: w.row.get(column) for column in w.kind.parents}


def stale_reason(own: Upsert, answer: Sequence[Any]) -> tuple[str, int | None]:
    """Why an upsert that changed nothing is stale — its object was deleted, a parent it names
    was (then it is orphaned: the earliest such deletion time), or a newer version is
    stored. ``answer`` is the row of its ``why`` statement."""
    if answer[0]:
        return f"{own.kind.name} {own.id} was deleted; deletes win", None
    deleted = [
        (int(at), parent, own.row.get(column))
        for (column, parent), at in zip(own.kind.parents.items(), answer[1:-1], strict=True)
        if at is not None
    ]
    if deleted:
        at, parent, parent_id = min(deleted, key=lambda d: d[0])
        return f"its {parent} {parent_id} was deleted; deletes win", at
    stored = answer[-1]
    stored_at = int(stored) // 4 if stored is not None else None
    return f"updated_at {own.updated_at} is not newer than the stored {stored_at}", None
