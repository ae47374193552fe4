"""Title and body templates: ``{placeholder}`` text rendered from one change, safely.

The syntax is :meth:`str.format`'s, reduced to what cannot leak: a placeholder is a name, or
``data`` followed by a dotted path (``{data.email_addresses.0.email_address}``), resolved by
*key and index lookup only* — never ``getattr`` — so ``{data.__class__}`` is simply a field the
payload does not have. Conversions (``!r``), format specs (``:>10``), ``[...]`` items and
positional ``{}`` are refused when the rules are loaded.

A placeholder is checked against example payloads at load (:meth:`Template.missing`); at send
time one the delivered payload lacks renders as an empty string, because a retry could not
make it appear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from ..hooks import ChangeEvent

NAMES = ("type", "svix_id", "subject_id", "email", "name", "data")
"""The placeholders every template may use (``data`` takes a dotted path after it)."""
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*")
_METADATA = ("public_metadata", "private_metadata", "unsafe_metadata")
"""Objects whose keys each application chooses: no example payload can know them, so a path
into one of them is accepted at load when the object itself exists."""


class TemplateError(ValueError):
    """A template that cannot be used; the message says why, in a few words."""


@dataclass(frozen=True, slots=True)
class Template:
    """One parsed template: literal text and placeholder paths, alternating."""

    source: str
    parts: tuple[tuple[str, tuple[str, ...] | None], ...] = field(repr=False)

    @classmethod
    def parse(cls, source: str) -> Template:
        """Parse ``source``; a placeholder that is not allowed is a :class:`TemplateError`."""
        try:
            parsed = list(Formatter().parse(source))
        except ValueError as exc:
            raise TemplateError(
                f"braces do not match ({exc}): write {{{{ and }}}} for literal braces"
            ) from None
        parts: list[tuple[str, tuple[str, ...] | None]] = []
        for literal, placeholder, spec, conversion in parsed:
            if placeholder is None:
                parts.append((literal, None))
                continue
            shown = "{" + placeholder + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            if conversion or spec:
                raise TemplateError(
                    f"placeholder {shown} has a conversion or format spec: only plain "
                    "{name} placeholders are allowed"
                )
            if not _PATH.fullmatch(placeholder):
                raise TemplateError(
                    f"placeholder {shown} is not a name or a dotted path "
                    "(write list items as {data.email_addresses.0.email_address})"
                )
            path = tuple(placeholder.split("."))
            if path[0] not in NAMES or (path[0] != "data" and len(path) > 1):
                raise TemplateError(
                    f"placeholder {shown} does not exist (use {{type}}, {{svix_id}}, "
                    "{subject_id}, {email}, {name} or {data.<field>})"
                )
            parts.append((literal, path))
        return cls(source, tuple(parts))

    def placeholders(self) -> list[str]:
        return ["{" + ".".join(path) + "}" for _, path in self.parts if path is not None]

    def missing(self, context: Mapping[str, Any]) -> str | None:
        """The first placeholder that ``context`` (see :func:`context`) cannot fill, or None."""
        for _, path in self.parts:
            if path is not None and not _resolve(context, path, lenient=True)[0]:
                return "{" + ".".join(path) + "}"
        return None

    def render(self, context: Mapping[str, Any]) -> str:
        """The text: a placeholder the payload lacks (or that is null) renders as ``""``."""
        out: list[str] = []
        for literal, path in self.parts:
            out.append(literal)
            if path is not None:
                out.append(text_of(_resolve(context, path, lenient=False)[1]))
        return "".join(out)


def context(event: ChangeEvent) -> dict[str, Any]:
    """What placeholders are filled from for one change."""
    data = event.data
    return {
        "type": event.type,
        "svix_id": event.svix_id,
        "subject_id": event.subject_id,
        "email": email_of(data),
        "name": name_of(data),
        "data": data,
    }


def email_of(data: Mapping[str, Any]) -> str:
    """``{email}``: a user's primary address (``email_addresses`` + ``primary_email_address_id``),
    else ``email_address`` (invitations, waitlist entries), else a membership's
    ``public_user_data.identifier`` when it is an address, else a session's ``user``'s; ``""``."""
    addresses = data.get("email_addresses")
    primary = data.get("primary_email_address_id")
    if isinstance(addresses, list) and primary:
        for entry in addresses:
            if isinstance(entry, Mapping) and entry.get("id") == primary:
                return text_of(entry.get("email_address"))
    direct = data.get("email_address")
    if isinstance(direct, str) and direct:
        return direct
    public = data.get("public_user_data")
    if isinstance(public, Mapping):
        identifier = public.get("identifier")
        if isinstance(identifier, str) and "@" in identifier:
            return identifier
    user = data.get("user")
    return email_of(user) if isinstance(user, Mapping) else ""


def name_of(data: Mapping[str, Any]) -> str:
    """``{name}``: ``first_name last_name`` (trimmed) of the object, else of its
    ``public_user_data`` or ``user``, else its ``name`` (organizations, roles, …); ``""``."""
    for holder in (data, data.get("public_user_data"), data.get("user")):
        if isinstance(holder, Mapping):
            full = " ".join(
                text_of(holder.get(part)).strip() for part in ("first_name", "last_name")
            ).strip()
            if full:
                return full
    own = data.get("name")
    return own.strip() if isinstance(own, str) else ""


def text_of(value: Any) -> str:
    """A value as template text: null is empty, booleans are ``true``/``false``, objects and
    lists are compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _resolve(context: Mapping[str, Any], path: Sequence[str], *, lenient: bool) -> tuple[bool, Any]:
    """``(found, value)`` by key and index lookup alone. ``lenient``: a key absent inside an
    existing ``*_metadata`` object counts as found (the application decides those keys)."""
    value: Any = context
    parent = ""
    for step in path:
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list | tuple) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif lenient and parent in _METADATA and isinstance(value, Mapping):
            return True, None
        else:
            return False, None
        parent = step
    return True, value
