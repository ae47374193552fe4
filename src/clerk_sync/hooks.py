"""In-transaction hooks: application code run inside a delivery's transaction.

A hook is registered for event-type patterns (``fnmatch`` globs: ``user.deleted``,
``organization.*``) and called as ``fn(connection, event)`` after the delivery was recorded
and before its change is applied, on the same connection; an exception rolls the delivery back
(503, Svix retries). ``ON_USER_DELETED``'s ``fn(connection, user_id)`` is one such hook for
``user.deleted``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """What a hook is told about the delivery being applied."""

    svix_id: str
    type: str
    subject_id: str
    data: Mapping[str, Any]


InTransactionHook = Callable[[Connection, ChangeEvent], None]
UserDeletedHook = Callable[[Connection, str], None]
"""Cleanup run inside a user's delete transaction, before the row goes: ``fn(conn, user_id)``."""


class InTransactionHooks:
    """Hooks by pattern; :meth:`matching` is cached per event type."""

    def __init__(self, registered: Iterable[tuple[str, InTransactionHook]] = ()) -> None:
        self._registered: tuple[tuple[str, InTransactionHook], ...] = tuple(registered)
        self.matching = lru_cache(maxsize=256)(self._matching)

    @classmethod
    def build(
        cls,
        on_user_deleted: Sequence[UserDeletedHook] = (),
        in_transaction: Iterable[tuple[str, InTransactionHook]] = (),
    ) -> InTransactionHooks:
        adapted = [("user.deleted", _by_user_id(fn)) for fn in on_user_deleted]
        return cls([*adapted, *in_transaction])

    def _matching(self, event_type: str) -> tuple[InTransactionHook, ...]:
        return tuple(fn for pattern, fn in self._registered if fnmatchcase(event_type, pattern))

    def __bool__(self) -> bool:
        return bool(self._registered)


def _by_user_id(fn: UserDeletedHook) -> InTransactionHook:
    def hook(conn: Connection, event: ChangeEvent) -> None:
        fn(conn, event.subject_id)

    hook.__qualname__ = getattr(fn, "__qualname__", "on_user_deleted")
    return hook
