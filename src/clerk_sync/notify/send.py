"""Sending through apprise: the one module that imports it, lazily.

apprise is the optional ``notify`` extra, so nothing here runs at import time: clerk-sync works
without it, and :func:`require_apprise` says what to install when rules ask for it. A failed
send raises :class:`NotificationFailed`, which the outbox worker turns into a retry and, at the
last attempt, a dead row.

URLs carry credentials (Slack tokens, SMTP passwords), so no message made here shows more of
one than its scheme (``slack://…``), and apprise's own log lines are scrubbed of every piece of
the URLs before they are quoted.
"""

from __future__ import annotations

import importlib
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from ..errors import ClerkSyncError, ConfigError

if TYPE_CHECKING:
    from types import ModuleType

Level = Literal["info", "success", "warning", "failure"]
LEVELS: tuple[Level, ...] = ("info", "success", "warning", "failure")
INSTALL = "pip install 'clerk-sync[notify]'"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_URL_PIECE = re.compile(r"[^/:@?&=#,;+\s]{4,}")
_LOADED = threading.Lock()
_plugins_loaded = False
_REMEMBERED = 4096


class NotificationFailed(ClerkSyncError):
    """apprise could not deliver to at least one URL; the message names them by scheme."""

    code = "notification_failed"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, rendered."""

    title: str
    body: str
    level: Level = "info"


def require_apprise() -> ModuleType:
    """The apprise module, its plugins loaded; :class:`ConfigError` with the install command
    when it is missing."""
    global _plugins_loaded
    try:
        apprise = importlib.import_module("apprise")
    except ImportError:
        raise ConfigError(
            f"notifications need the apprise package, which is not installed: {INSTALL}"
        ) from None
    with _LOADED:
        if not _plugins_loaded:
            # apprise's e-mail plugin imports the stdlib's imghdr for PGPy, which Python 3.11
            # and 3.12 deprecate on import; nothing of ours to fix, and -W error must not stop
            # the plugins from loading.
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="'imghdr' is deprecated", category=DeprecationWarning
                )
                manager = importlib.import_module("apprise.manager_plugins")
                manager.NotificationManager().load_modules()
            _plugins_loaded = True
    return apprise


def scheme_of(url: str) -> str:
    """What messages show of a URL: ``slack://…`` (never its host, tokens or password)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme.lower()}://…" if sep and _SCHEME.fullmatch(scheme) else "(no scheme)"


def supported(url: str) -> bool:
    """Whether apprise takes ``url`` as exactly one service (it would split ``a, b`` in two)."""
    apprise = require_apprise()
    client = apprise.Apprise()
    return bool(client.add(url)) and len(client) == 1


def send(urls: Sequence[str], message: Message, *, what: str, once_key: str = "") -> None:
    """Send ``message`` to every URL; raise :class:`NotificationFailed` naming the URLs that
    failed (by scheme), with apprise's reason.

    ``once_key`` (the outbox row's idempotency key): URLs that already took this notification
    in this process are skipped when it is retried, so one failing URL of several does not
    repeat it on the others.
    """
    apprise = require_apprise()
    done = _delivered(once_key)
    failures: list[str] = []
    for index, url in enumerate(urls):
        if index in done:
            continue
        client = apprise.Apprise(asset=_asset(apprise))
        client.add(url)
        # The result owns its captured log lines (spilled to a temporary file when large).
        with client.notify(
            body=message.body,
            title=message.title,
            notify_type=message.level,
            body_format=apprise.NotifyFormat.TEXT,
        ) as result:
            if result:
                done.add(index)
                continue
            reasons = [
                entry.message
                for entry in result.logs()
                if entry.level in ("WARNING", "ERROR", "CRITICAL")
            ]
            status = result.status.name.lower()
        failures.append(f"{scheme_of(url)} ({_scrub('; '.join(reasons), urls) or status})")
    if once_key:
        _remember(once_key, done if failures else None)
    if failures:
        sent = len(urls) - len(failures)
        tail = f"; {sent} other URL(s) took it" if sent else ""
        raise NotificationFailed(f"{what} could not be sent to {', '.join(failures)}{tail}")


def _asset(apprise: ModuleType) -> object:
    """Sent as the User-Agent and the e-mail sender's name."""
    return apprise.AppriseAsset(app_id="clerk-sync", app_desc="clerk-sync notifications")


def _scrub(text: str, urls: Sequence[str]) -> str:
    """``text`` without any piece of any URL (host, path segment, user, password, query value)
    of four or more characters: apprise's messages name the host, and some plugins more."""
    found = [p for url in urls for p in _URL_PIECE.findall(url.partition("://")[2])]
    pieces = {*found, *(unquote(p) for p in found)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "…")
    return " ".join(text.split())[:300]


_sent: OrderedDict[str, set[int]] = OrderedDict()
_sent_lock = threading.Lock()


def _delivered(key: str) -> set[int]:
    if not key:
        return set()
    with _sent_lock:
        return set(_sent.get(key, ()))


def _remember(key: str, done: set[int] | None) -> None:
    """Keep what a failed run delivered, for its retry; forget a key once all went out."""
    with _sent_lock:
        if done is None:
            _sent.pop(key, None)
            return
        _sent[key] = done
        _sent.move_to_end(key)
        while len(_sent) > _REMEMBERED:
            _sent.popitem(last=False)
