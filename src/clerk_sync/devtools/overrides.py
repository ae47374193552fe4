"""``--set path=value``: change one field of a fixture before it is signed.

The path is dotted from the envelope's top (``data.first_name``); a number indexes a list
(``data.email_addresses.0.email_address``). Missing objects on the way are created. The value is
read as JSON when it is JSON (``42``, ``true``, ``null``, ``{"plan": "pro"}``, ``"007"``) and
taken as a plain string otherwise (``Ada``), so the common case needs no quoting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidParameter


@dataclass(frozen=True, slots=True)
class Override:
    path: tuple[str, ...]
    value: Any
    text: str
    """As given on the command line, for messages."""


def parse_override(text: str) -> Override:
    """Read ``path=value``; a malformed one is an :class:`InvalidParameter` saying the form."""
    path, sep, raw = text.partition("=")
    parts = tuple(path.strip().split("."))
    if not sep or not path.strip() or any(not p for p in parts):
        raise InvalidParameter(
            f"--set {text!r} must look like path=value, e.g. --set data.first_name=Ada."
        )
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    return Override(parts, value, text)


def apply_override(event: dict[str, Any], override: Override) -> None:
    """Set the field in place, creating missing objects along the path."""
    node: Any = event
    for depth, key in enumerate(override.path):
        last = depth == len(override.path) - 1
        where = ".".join(override.path[: depth + 1])
        if isinstance(node, list):
            if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                raise InvalidParameter(
                    f"--set {override.text!r}: {where} is not an index of a list of "
                    f"{len(node)} item(s)."
                )
            if last:
                node[int(key)] = override.value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = override.value
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
        else:
            parent = ".".join(override.path[:depth]) or "the event"
            raise InvalidParameter(
                f"--set {override.text!r}: {parent} is {type(node).__name__}, not an object "
                "or a list."
            )
