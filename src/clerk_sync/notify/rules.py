"""``NOTIFY_RULES``: a TOML file of notification rules and alerts, refused whole at startup
when anything in it is wrong.

A notification that cannot render or cannot be sent is only found out when its event comes —
perhaps weeks later, as a dead outbox row. So :func:`load_rules` checks everything it can
before the server takes a request: the TOML, every field's name and type, that each event
pattern matches a type clerk-sync applies, that each placeholder exists in the example payload
(:mod:`clerk_sync.devtools.catalog`) of *every* type its rule matches, that apprise takes each
URL, and each alert's kind and duration. Each problem is one :class:`ConfigError` line naming
the file, the rule and the fault — and never more of a URL than its scheme.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection

from ..devtools.catalog import Subject, fixture_for
from ..devtools.fixtures import new_id
from ..entities import handled_types
from ..errors import ConfigError
from ..hooks import ChangeEvent, Hook
from ..store.schema import Tables
from . import alerts as alerts_module
from .alerts import KINDS, MAX_THRESHOLD, Alert, FailureCount, Kind, parse_duration
from .send import LEVELS, Level, Message, require_apprise, scheme_of, send, supported
from .templates import Template, TemplateError, context

SETTING = "NOTIFY_RULES"
HOOK_PREFIX = "notify:"
DEFAULT_TITLE = "{type}: {subject_id}"
DEFAULT_BODY = "clerk-sync applied {type} to {subject_id} (delivery {svix_id})."
RULE_FIELDS = ("name", "events", "notify", "title", "body", "level")
ALERT_FIELDS = ("name", "kind", "after", "notify", "threshold")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_EXAMPLE_MS = 1_767_225_600_000  # 2026-01-01: example payloads need some instant


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rule]]``: which events, where to, and what it says."""

    name: str
    events: tuple[str, ...]
    notify: tuple[str, ...] = field(repr=False)
    title: Template
    body: Template
    level: Level = "info"
    position: int = 1
    types: tuple[str, ...] = ()
    """The event types its patterns match, in :func:`handled_types` order."""

    @property
    def hook_name(self) -> str:
        return HOOK_PREFIX + self.name

    def message(self, event: ChangeEvent) -> Message:
        values = context(event)
        return Message(self.title.render(values), self.body.render(values), self.level)

    def send(self, event: ChangeEvent) -> None:
        """The hook: render, send; raise when apprise reports a failure (the outbox retries)."""
        send(
            self.notify,
            self.message(event),
            what=f"rule {self.name!r} ({event.type} {event.subject_id})",
            once_key=event.idempotency_key,
        )


@dataclass(frozen=True, slots=True)
class TestSent:
    """What ``clerk-sync notify test`` sent."""

    what: str
    source: str
    """What it was rendered from: an event type's example payload, or sample alert facts."""
    message: Message
    schemes: tuple[str, ...]


@dataclass(frozen=True)
class Notifications:
    """The loaded rules file: hooks for the outbox worker and the alert checker."""

    path: str
    rules: tuple[Rule, ...] = ()
    alerts: tuple[Alert, ...] = ()

    def hooks(self) -> list[Hook]:
        """One after-commit hook per rule (``notify:<name>``, its patterns) and one per alert
        (``notify:alert:<name>``, no patterns: only :meth:`check_alerts` writes its rows)."""
        found = [Hook(r.hook_name, "after_commit", r.events, r.send) for r in self.rules]
        found += [Hook(a.hook_name, "after_commit", (), a.send) for a in self.alerts]
        return found

    def check_alerts(
        self,
        conn: Connection,
        tables: Tables,
        now_ms: int,
        signature_failures: FailureCount | None = None,
    ) -> int:
        """Enqueue the alerts that are due (see :mod:`.alerts`); returns how many rows were
        new. Call it periodically inside a transaction; any number of replicas may."""
        return alerts_module.check(conn, tables, self.alerts, now_ms, signature_failures)

    def find(self, name: str) -> Rule | Alert | None:
        """A rule by name or ``rule-N``, or an alert by name or kind."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        for rule in self.rules:
            if name == f"rule-{rule.position}":
                return rule
        for alert in self.alerts:
            if alert.name == name:
                return alert
        return next((a for a in self.alerts if a.kind == name), None)

    def names(self) -> list[str]:
        return [r.name for r in self.rules] + [a.name for a in self.alerts]

    def send_test(self, target: Rule | Alert, now_ms: int) -> TestSent:
        """Render ``target`` from an example (its first event type's fixture payload, or
        sample alert facts) and send it once, not through the outbox."""
        if isinstance(target, Alert):
            facts = target.sample(now_ms)
            message = alerts_module.describe(facts)
            send(target.notify, message, what=f"alert {target.name!r}")
            return TestSent(
                f"alert {target.name!r}",
                f"sample {target.kind} facts",
                message,
                tuple(scheme_of(u) for u in target.notify),
            )
        event_type = target.types[0]
        data = _example(event_type)
        event = ChangeEvent(new_id("msg"), event_type, str(data.get("id", "")), data)
        message = target.message(event)
        send(target.notify, message, what=f"rule {target.name!r}")
        return TestSent(
            f"rule {target.name!r}",
            f"the {event_type} example payload",
            message,
            tuple(scheme_of(u) for u in target.notify),
        )


def load_rules(path: str) -> Notifications:
    """Read and check the rules file at ``path``; every problem is a one-line ConfigError."""
    where = f"{SETTING} {path}"
    try:
        require_apprise()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.detail}") from None
    document = _read(path, where)
    unknown = [key for key in document if key not in ("rule", "alert")]
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key {unknown[0]!r} (it holds [[rule]] and [[alert]] "
            "tables only)"
        )
    rule_tables = _tables(document, "rule", where)
    alert_tables = _tables(document, "alert", where)
    if not rule_tables and not alert_tables:
        raise ConfigError(f"{where}: defines no [[rule]] and no [[alert]]")
    rules: list[Rule] = []
    for position, table in enumerate(rule_tables, start=1):
        rule = _rule(table, position, where)
        _unique(rule.name, [r.name for r in rules], f'{where}, rule "{rule.name}"', "rule")
        rules.append(rule)
    found_alerts: list[Alert] = []
    for position, table in enumerate(alert_tables, start=1):
        alert = _alert(table, position, where)
        label = f'{where}, alert "{alert.name}"'
        _unique(alert.name, [a.name for a in found_alerts], label, "alert")
        found_alerts.append(alert)
    return Notifications(path, tuple(rules), tuple(found_alerts))


def _read(path: str, where: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def _tables(document: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{where}: {key!r} must be tables written [[{key}]]")
    return cast(list[dict[str, Any]], value)


def _rule(table: Mapping[str, Any], position: int, where: str) -> Rule:
    name, label = _name(table, position, where, "rule", f"rule-{position}")
    _known(table, RULE_FIELDS, label)
    events = _strings(table, "events", label, 'event types, e.g. ["user.created"]')
    known = handled_types()
    types: list[str] = []
    for pattern in events:
        matched = [t for t in known if fnmatchcase(t, pattern)]
        if not matched:
            raise ConfigError(
                f"{label}: events pattern {pattern!r} matches no event type clerk-sync applies "
                "(see `clerk-sync trigger --list`)"
            )
        types += [t for t in matched if t not in types]
    ordered = tuple(t for t in known if t in types)
    templates = {}
    for key, default in (("title", DEFAULT_TITLE), ("body", DEFAULT_BODY)):
        source = table.get(key, default)
        if not isinstance(source, str):
            raise ConfigError(f"{label}: {key} must be a string")
        templates[key] = _template(source, key, ordered, label)
    level = table.get("level", "info")
    if level not in LEVELS:
        raise ConfigError(f"{label}: level {level!r} must be one of {', '.join(LEVELS)}")
    return Rule(
        name,
        tuple(events),
        _urls(table, label),
        templates["title"],
        templates["body"],
        cast(Level, level),
        position,
        ordered,
    )


def _template(source: str, key: str, types: tuple[str, ...], label: str) -> Template:
    try:
        template = Template.parse(source)
    except TemplateError as exc:
        raise ConfigError(f"{label}: {exc} (in {key})") from None
    for event_type in types:
        event = ChangeEvent("msg_example", event_type, "example", _example(event_type))
        missing = template.missing(context(event))
        if missing is not None:
            raise ConfigError(
                f"{label}: placeholder {missing} does not exist in {event_type} (in {key})"
            )
    return template


def _alert(table: Mapping[str, Any], position: int, where: str) -> Alert:
    raw_kind = table.get("kind")
    default = raw_kind if isinstance(raw_kind, str) and raw_kind in KINDS else ""
    name, label = _name(table, position, where, "alert", default)
    _known(table, ALERT_FIELDS, label)
    if raw_kind is None:
        raise ConfigError(f"{label}: kind is missing (one of {', '.join(KINDS)})")
    if raw_kind not in KINDS:
        raise ConfigError(f"{label}: unknown kind {raw_kind!r} (one of {', '.join(KINDS)})")
    kind = cast(Kind, raw_kind)
    spec = KINDS[kind]
    after = table.get("after", spec.after)
    if not isinstance(after, str) or parse_duration(after) is None:
        raise ConfigError(
            f"{label}: after {after!r} is not a duration: a whole number and s, m, h or d, "
            'e.g. "90s", "15m", "6h", "2d"'
        )
    threshold = table.get("threshold", 10)
    if "threshold" in table and not spec.threshold:
        raise ConfigError(f"{label}: threshold applies to signature_failures alerts only")
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ConfigError(f"{label}: threshold must be a whole number")
    if not 1 <= threshold <= MAX_THRESHOLD:
        raise ConfigError(f"{label}: threshold {threshold} must be 1 to {MAX_THRESHOLD}")
    return Alert(name, kind, after.strip(), _urls(table, label), threshold, position)


def _name(
    table: Mapping[str, Any], position: int, where: str, noun: str, default: str
) -> tuple[str, str]:
    """The name, and how messages call it: by name when given, else by position."""
    by_position = f"{where}, {noun} #{position}"
    if "name" not in table:
        return default, by_position
    name = table["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{by_position}: name {name!r} must be letters, digits, _ . or - "
            "(at most 64, starting with a letter or digit)"
        )
    return name, f'{where}, {noun} "{name}"'


def _known(table: Mapping[str, Any], fields: tuple[str, ...], label: str) -> None:
    for key in table:
        if key not in fields:
            raise ConfigError(f"{label}: unknown field {key!r} (fields: {', '.join(fields)})")


def _strings(table: Mapping[str, Any], key: str, label: str, what: str) -> list[str]:
    if key not in table:
        raise ConfigError(f"{label}: {key} is missing: a list of {what}")
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{label}: {key} must be a list of {what}")
    if not value:
        raise ConfigError(f"{label}: {key} is empty: give at least one")
    return [v.strip() for v in value]


def _urls(table: Mapping[str, Any], label: str) -> tuple[str, ...]:
    if "notify" not in table:
        raise ConfigError(f'{label}: notify is missing: a list of apprise URLs, e.g. ["slack://…"]')
    value = table["notify"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{label}: notify must be a list of apprise URLs (strings)")
    if not value:
        raise ConfigError(f"{label}: notify is empty: give at least one apprise URL")
    urls = [v.strip() for v in value]
    for index, url in enumerate(urls, start=1):
        if url in urls[: index - 1]:
            raise ConfigError(
                f"{label}: notify URL #{index} ({scheme_of(url)}) repeats #{urls.index(url) + 1}"
            )
        if not supported(url):
            raise ConfigError(
                f"{label}: notify URL #{index} ({scheme_of(url)}) is not a URL apprise "
                "supports, or lacks a part it needs (see https://github.com/caronc/apprise/wiki)"
            )
    return tuple(urls)


def _unique(name: str, taken: list[str], label: str, noun: str) -> None:
    if name in taken:
        raise ConfigError(
            f"{label}: the name is already used by {noun} #{taken.index(name) + 1}"
            + (": give one of them a name" if noun == "alert" else "")
        )


@cache
def _example(event_type: str) -> Mapping[str, Any]:
    """The ``data`` of the example payload ``clerk-sync trigger`` sends for ``event_type``."""
    fixture = fixture_for(event_type)
    if fixture is None:  # every handled type has one (a test sees to it)
        return {}
    subject = Subject(new_id(fixture.id_prefix), 0, _EXAMPLE_MS, _EXAMPLE_MS)
    data = fixture.build(subject).get("data")
    return data if isinstance(data, Mapping) else {}
