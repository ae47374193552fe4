"""A plan's writes as the store's statements: the SQL side of the entity core.

Each write carries its kind's declarations (table, parents, children, scrubs), so nothing here
asks which kind it holds: an upsert is one guarded statement; a delete is its tombstone, its
children's tombstones and cascades, the scrubs of rows naming it, the row, and — for a kind
with personal data — the erasure of every body naming it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from .entities import Delete, Kind, Plan, Upsert, Write, children, scrubbed_by
from .store import writes


class OwnWrite(NamedTuple):
    """Where a delivery's own upsert is answered among a run's steps."""

    upsert: int
    """The step that writes it, whose answer lists the ids it wrote."""
    why: int
    """The step right after, which says why each of its own upserts would have been refused."""
    id: str


def write_steps(
    stmts: writes.Statements, plan: Plan, now_ms: int, svix_id: str
) -> list[writes.Step]:
    """The statements of a delivery's plan, in order; its own write first."""
    steps: list[writes.Step] = []
    for w in plan.writes:
        steps += steps_of(stmts, w, now_ms, svix_id)
    return steps


def run_steps(
    stmts: writes.Statements, plans: Sequence[tuple[Plan | None, str]], now_ms: int
) -> tuple[list[writes.Step], list[OwnWrite | None]]:
    """The statements of a run of deliveries' plans (each with its svix id), and where each
    one's own upsert is answered (None: a delete, or no plan).

    A delete, only ever a run's first delivery (:func:`starts_run`), goes first, row at a time.
    The upserts go as one statement per table per *layer*: layer n holds every object's n-th
    write in the run. So no statement writes an object twice (PostgreSQL refuses that) and an
    object's writes keep their arrival order, which is all the order that matters between
    upserts: their guards read only tombstones, which the delete wrote before them, and log
    rows, which were all written before any. Each upsert statement is followed by the question
    why its deliveries' own rows were refused, if they were: asked then, the answer is the one
    the delivery would have had alone, though later deliveries in the run write the same
    object, and no round trip waits for it.
    """
    steps: list[writes.Step] = []
    layers: list[dict[str, _Layer]] = []
    seen: Counter[str] = Counter()
    placed: list[tuple[int, str, str] | None] = []
    for plan, svix_id in plans:
        if plan is None or isinstance(plan.writes[0], Delete):
            if plan is not None:
                if layers:
                    raise AssertionError("a delete must start its run")
                steps += write_steps(stmts, plan, now_ms, svix_id)
            placed.append(None)
            continue
        for n, w in enumerate(plan.writes):
            if not isinstance(w, Upsert):
                raise AssertionError("only a plan's own write may be a delete")
            layer = seen[key(w)]
            seen[key(w)] += 1
            if layer == len(layers):
                layers.append({})
            group = layers[layer].get(w.kind.name)
            if group is None:
                group = layers[layer][w.kind.name] = _Layer(statements_of(stmts, w.kind))
            group.rows.append(group.entity.upsert_values(w.row, now_ms, svix_id))
            if n == 0:
                group.asked.append({"id": w.id, **parent_values(w)})
                placed.append((layer, w.kind.name, w.id))
    at: dict[tuple[int, str], int] = {}
    for n, groups in enumerate(layers):
        for name, group in groups.items():
            at[n, name] = len(steps)
            steps.append((group.entity.upsert, writes.rows_param(group.rows)))
            steps.append((group.entity.why, writes.rows_param(group.asked)))
    own = [
        None if p is None else OwnWrite(at[p[0], p[1]], at[p[0], p[1]] + 1, p[2]) for p in placed
    ]
    return steps, own


class _Layer:
    __slots__ = ("asked", "entity", "rows")

    def __init__(self, entity: writes.EntityStatements) -> None:
        self.entity = entity
        self.rows: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []


def answered(
    own: Sequence[OwnWrite | None], answers: Sequence[Sequence[Any]]
) -> list[Sequence[Any] | None]:
    """For each delivery, from the answers to :func:`run_steps`' statements: None if its own
    write took effect (a delete always does), else the row that says why it did not (see
    :func:`stale_reason`)."""
    written: dict[int, set[Any]] = {}
    reasons: dict[int, dict[Any, Sequence[Any]]] = {}
    out: list[Sequence[Any] | None] = []
    for where in own:
        if where is None:
            out.append(None)
            continue
        if where.upsert not in written:
            written[where.upsert] = {row[0] for row in answers[where.upsert]}
        if where.id in written[where.upsert]:
            out.append(None)
            continue
        if where.why not in reasons:
            reasons[where.why] = {row[0]: row[1:] for row in answers[where.why]}
        out.append(reasons[where.why][where.id])
    return out


def steps_of(stmts: writes.Statements, w: Write, now_ms: int, svix_id: str) -> list[writes.Step]:
    entity = statements_of(stmts, w.kind)
    if isinstance(w, Upsert):
        return [(entity.upsert, writes.rows_param([entity.upsert_values(w.row, now_ms, svix_id)]))]
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


def starts_run(plan: Plan | None, svix_id: str, seen: set[str]) -> bool:
    """Whether a delivery must start a new run: a delete, whose cascades and tombstones go
    row at a time before the run's upserts (see :func:`run_steps`); or a svix id the run
    already holds, since a run's log rows are one statement, which writes a row only once."""
    if svix_id in seen:
        return True
    return plan is not None and isinstance(plan.writes[0], Delete)


def erases(plan: Plan | None) -> bool:
    """Whether the plan deletes an object with personal data (a user)."""
    return plan is not None and any(isinstance(w, Delete) and w.kind.personal for w in plan.writes)


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
