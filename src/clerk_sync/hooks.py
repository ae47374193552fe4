"""Application code run when changes are applied: the one registry of hooks.

Two phases, registered with decorators and matched by event-type patterns (``fnmatch`` globs:
``user.created``, ``organizationMembership.*``):

* ``@after_commit(...)`` — ``fn(event)`` (or ``async def``), run by the outbox worker after the
  delivery's transaction committed, for ``processed`` deliveries only, at least once, in
  delivery order per subject (:mod:`clerk_sync.outbox`). The receiver only writes the rows; it
  needs each hook's *name and patterns*, plain data that crosses to the writer process.
* ``@in_transaction(...)`` — ``fn(connection, event)``, run inside the delivery's transaction
  before its change is applied; an exception rolls the delivery back (503, Svix retries).
  ``ON_USER_DELETED``'s ``fn(connection, user_id)`` is one such hook for ``user.deleted``.

Decorating only records a hook; a deployment runs the hooks it is given (``HOOKS`` or
``create_app(settings, hooks=[...])``), so importing a module of hooks in a test or a script
switches nothing on by itself.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection

from .errors import ConfigError
from .events import Status

Phase = Literal["after_commit", "in_transaction"]
F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__clerk_sync_hooks__"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """What a hook is told about one applied delivery."""

    svix_id: str
    type: str
    subject_id: str
    data: Mapping[str, Any]
    """The payload's ``data``: the Clerk object as it was delivered."""
    status: Status = Status.PROCESSED
    attempt: int = 1
    """1 on the first run of this hook for this delivery, 2 on its first retry, …"""
    idempotency_key: str = ""
    """The same on every attempt of one hook for one delivery, and different for any other:
    pass it on to e-mail or payment APIs so a retried run does not act twice."""


InTransactionHook = Callable[[Connection, ChangeEvent], None]
AfterCommitHook = Callable[[ChangeEvent], Any]
UserDeletedHook = Callable[[Connection, str], None]
"""Cleanup run inside a user's delete transaction, before the row goes: ``fn(conn, user_id)``."""


@dataclass(frozen=True, slots=True)
class Hook:
    """One registered hook."""

    name: str
    """``module:qualname`` — what outbox rows name it by, so it must stay stable."""
    phase: Phase
    patterns: tuple[str, ...]
    fn: Callable[..., Any]
    mirror: bool = False
    """Only the newest state of a subject matters (a sink copying objects elsewhere): the
    worker skips a row a later one of the same subject has superseded (:mod:`.outbox`)."""
    backfill: bool = False
    """Also run for objects the backfill fetched (``source = backfill``). Off by default, so a
    first backfill does not send every existing user a welcome e-mail; sinks turn it on."""

    def matches(self, event_type: str) -> bool:
        return any(fnmatchcase(event_type, p) for p in self.patterns)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


def idempotency_key(handler: str, svix_id: str) -> str:
    """Stable per (hook, delivery); 32 hex characters, safe in any header or API field."""
    return hashlib.sha256(f"{handler}\n{svix_id}".encode()).hexdigest()[:32]


def after_commit(
    *patterns: str, name: str | None = None, backfill: bool = False
) -> Callable[[F], F]:
    """Register ``fn(event: ChangeEvent)`` to run after a matching delivery committed
    (``backfill=True``: also for objects ``clerk-sync backfill`` fetched)."""
    return _register("after_commit", patterns, name, backfill)


def in_transaction(*patterns: str) -> Callable[[F], F]:
    """Register ``fn(connection, event: ChangeEvent)`` to run inside a matching delivery's
    transaction, before its change is applied."""
    return _register("in_transaction", patterns, None)


def _register(
    phase: Phase, patterns: tuple[str, ...], name: str | None, backfill: bool = False
) -> Callable[[F], F]:
    decorator = f"@clerk_sync.{phase}"
    if not patterns:
        raise ConfigError(f"{decorator}() needs at least one event type, e.g. 'user.created'.")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"{decorator} takes event types as strings, not {pattern!r}.")

    def register(fn: F) -> F:
        if not callable(fn):
            raise ConfigError(f"{decorator} decorates a function, not {fn!r}.")
        if phase == "in_transaction" and inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"{decorator} hook {_name_of(fn)} is async: in-transaction hooks run on the "
                "database connection's thread and must be plain functions."
            )
        hook = Hook(name or _name_of(fn), phase, tuple(patterns), fn, backfill=backfill)
        setattr(fn, _ATTRIBUTE, (*getattr(fn, _ATTRIBUTE, ()), hook))
        _DEFINED.setdefault(fn.__module__, []).append(hook)
        return fn

    return register


_DEFINED: dict[str, list[Hook]] = {}
"""Module name → the hooks decorated in it, in order."""


def _name_of(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}"


def hooks_of(target: Any) -> tuple[Hook, ...]:
    """The hooks a decorated function registered (empty for anything else)."""
    found = getattr(target, _ATTRIBUTE, ())
    return tuple(found) if isinstance(found, tuple) else ()


def load(paths: Sequence[str], setting: str = "HOOKS") -> list[Hook]:
    """Import ``HOOKS`` entries: ``package.module`` (every hook decorated in it) or
    ``package.module:function`` (that function's hooks). A bad entry is a
    :class:`ConfigError` at startup, in one line that names it."""
    found: list[Hook] = []
    for path in paths:
        module_name, _, attr = path.partition(":")
        if not module_name or module_name.startswith(".") or path.endswith(":"):
            raise ConfigError(
                f"{setting} entry {path!r} must be 'package.module' or 'package.module:function'."
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a hook module may fail in any way: say which and why
            raise ConfigError(
                f"{setting} entry {path!r} does not import: {type(exc).__name__}: {exc}."
            ) from None
        if not attr:
            defined = _DEFINED.get(module.__name__, [])
            if not defined:
                raise ConfigError(
                    f"{setting} entry {path!r} registers no hooks: decorate its functions with "
                    "@clerk_sync.after_commit(...) or @clerk_sync.in_transaction(...)."
                )
            found += defined
            continue
        target = getattr(module, attr, None)
        if target is None:
            raise ConfigError(f"{setting} entry {path!r}: {module_name} has no {attr!r}.")
        registered = hooks_of(target)
        if not registered:
            raise ConfigError(
                f"{setting} entry {path!r} is not a registered hook: decorate it with "
                "@clerk_sync.after_commit(...) or @clerk_sync.in_transaction(...)."
            )
        found += registered
    return found


def named(modules: Sequence[str], names: Sequence[str]) -> list[Hook]:
    """In another process (the writer): import ``modules`` and take the in-transaction hooks
    called ``names`` — the ones the server chose, whatever else those modules define."""
    for module in modules:
        importlib.import_module(module)
    wanted = set(names)
    found = [
        h
        for defined in _DEFINED.values()
        for h in defined
        if h.phase == "in_transaction" and h.name in wanted
    ]
    missing = wanted - {h.name for h in found}
    if missing:
        raise ConfigError(f"in-transaction hooks not found after importing them: {sorted(missing)}")
    return found


def from_objects(objects: Iterable[Any]) -> list[Hook]:
    """``create_app(settings, hooks=[...])``: decorated functions, or :class:`Hook` objects
    (what built-in consumers such as notifications and sinks are)."""
    found: list[Hook] = []
    for target in objects:
        if isinstance(target, Hook):
            found.append(target)
            continue
        registered = hooks_of(target)
        if not registered:
            raise ConfigError(
                f"hooks=[...] entry {target!r} is not a registered hook: decorate it with "
                "@clerk_sync.after_commit(...) or @clerk_sync.in_transaction(...)."
            )
        found += registered
    return found


@dataclass(frozen=True)
class HookSet:
    """The hooks one deployment runs: what the receiver and the outbox worker are given."""

    hooks: tuple[Hook, ...] = ()
    _by_name: dict[str, Hook] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unique: dict[tuple[str, Phase], Hook] = {}
        for hook in self.hooks:
            unique.setdefault((hook.name, hook.phase), hook)
        object.__setattr__(self, "hooks", tuple(unique.values()))
        object.__setattr__(
            self, "_by_name", {h.name: h for h in self.hooks if h.phase == "after_commit"}
        )

    @property
    def after_commit(self) -> tuple[Hook, ...]:
        return tuple(h for h in self.hooks if h.phase == "after_commit")

    @property
    def in_transaction(self) -> tuple[Hook, ...]:
        return tuple(h for h in self.hooks if h.phase == "in_transaction")

    def handler(self, name: str) -> Hook | None:
        return self._by_name.get(name)

    def routes(self) -> list[Route]:
        """Each after-commit hook's name, patterns and whether it runs for backfilled objects:
        all the receiver needs to write rows (plain data, for the writer process too)."""
        return [(h.name, h.patterns, h.backfill) for h in self.after_commit]

    def modules(self) -> list[str]:
        """The modules a writer process must import to have the in-transaction hooks."""
        return sorted({h.fn.__module__ for h in self.in_transaction})

    def crosses_processes(self) -> bool:
        """Whether a writer process can import every in-transaction hook (not one defined in
        ``__main__`` or built at run time)."""
        return all(
            h.fn.__module__ != "__main__" and "<locals>" not in h.name for h in self.in_transaction
        )

    def check_patterns(self, known: Iterable[str]) -> None:
        """Refuse a pattern that matches no event type clerk-sync applies (a typo would
        otherwise wait silently forever)."""
        types = tuple(known)
        for hook in self.hooks:
            for pattern in hook.patterns:
                if not any(fnmatchcase(t, pattern) for t in types):
                    raise ConfigError(
                        f"hook {hook.name} is registered for {pattern!r}, which matches no event "
                        "type clerk-sync applies (see `clerk-sync trigger --list`)."
                    )


class InTransactionHooks:
    """In-transaction hooks by pattern; :meth:`matching` is cached per event type."""

    def __init__(self, registered: Iterable[tuple[str, InTransactionHook]] = ()) -> None:
        self._registered: tuple[tuple[str, InTransactionHook], ...] = tuple(registered)
        self.matching = lru_cache(maxsize=256)(self._matching)

    @classmethod
    def build(
        cls,
        on_user_deleted: Sequence[UserDeletedHook] = (),
        in_transaction: Iterable[tuple[str, InTransactionHook]] = (),
        hooks: Iterable[Hook] = (),
    ) -> InTransactionHooks:
        adapted = [("user.deleted", _by_user_id(fn)) for fn in on_user_deleted]
        decorated = [(p, h.fn) for h in hooks if h.phase == "in_transaction" for p in h.patterns]
        return cls([*adapted, *in_transaction, *decorated])

    def _matching(self, event_type: str) -> tuple[InTransactionHook, ...]:
        seen: list[InTransactionHook] = []
        for pattern, fn in self._registered:
            if fnmatchcase(event_type, pattern) and fn not in seen:
                seen.append(fn)
        return tuple(seen)

    def __bool__(self) -> bool:
        return bool(self._registered)


Route = tuple[str, tuple[str, ...], bool]
"""An after-commit hook as the receiver sees it: ``(name, patterns, on_backfill)``."""


class OutboxRoutes:
    """After-commit hook names by pattern: which outbox rows a processed delivery gets."""

    def __init__(self, routes: Iterable[Sequence[Any]] = ()) -> None:
        self._routes = tuple(
            (str(r[0]), tuple(r[1]), bool(r[2]) if len(r) > 2 else False) for r in routes
        )
        self.matching = lru_cache(maxsize=512)(self._matching)

    def _matching(self, event_type: str, backfill: bool = False) -> tuple[str, ...]:
        return tuple(
            name
            for name, patterns, on_backfill in self._routes
            if (on_backfill or not backfill) and any(fnmatchcase(event_type, p) for p in patterns)
        )

    def __bool__(self) -> bool:
        return bool(self._routes)


def _by_user_id(fn: UserDeletedHook) -> InTransactionHook:
    def hook(conn: Connection, event: ChangeEvent) -> None:
        fn(conn, event.subject_id)

    hook.__qualname__ = getattr(fn, "__qualname__", "on_user_deleted")
    return hook


def load_hooks(paths: list[str]) -> list[Callable[..., None]]:
    """``ON_USER_DELETED``: import ``module:function`` references; a bad one is a
    :class:`ConfigError` at startup. (Here, not in :mod:`.config`, so the writer process
    loads them without pydantic-settings.)"""
    hooks: list[Callable[..., None]] = []
    for path in paths:
        module_name, _, attr = path.partition(":")
        if not module_name or not attr or module_name.startswith("."):
            raise ConfigError(f"ON_USER_DELETED entry {path!r} must look like 'module:function'.")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"ON_USER_DELETED entry {path!r} cannot be loaded: {exc}.") from None
        if not callable(target):
            raise ConfigError(f"ON_USER_DELETED entry {path!r} is not callable.")
        hooks.append(target)
    return hooks
