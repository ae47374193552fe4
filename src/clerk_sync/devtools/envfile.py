"""Add one setting to a dotenv file without ever overwriting a value someone put there.

``clerk-sync dev`` writes its generated secret to ``.env.local``. The file may already hold
other settings, comments, ``export`` prefixes and quotes: those lines are kept byte for byte. A
non-empty value for the name is never replaced; an empty one (``NAME=`` or ``NAME=""``) is
filled in, since it holds nothing to lose. A new file is created readable by its owner only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

Change = Literal["created", "added", "filled", "kept"]

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _is_empty(raw: str) -> bool:
    value = raw.split(" #", 1)[0].strip()
    return value in ("", '""', "''")


def set_if_absent(path: Path, name: str, value: str, *, comment: str) -> Change:
    """Make ``path`` assign ``value`` to ``name`` unless it already assigns a non-empty value.

    Returns what was done: ``created`` the file, ``added`` a line, ``filled`` an empty
    assignment, or ``kept`` an existing value. Names compare case-insensitively, as
    :class:`~clerk_sync.Settings` reads them.
    """
    line = f"{name}={value}\n"
    block = f"# {comment}\n{line}"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(block)
        return "created"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    last: tuple[int, str] | None = None  # dotenv files: the last assignment wins
    for index, existing in enumerate(lines):
        match = _ASSIGNMENT.match(existing)
        if match is not None and match.group(1).lower() == name.lower():
            last = (index, match.group(2))
    if last is None:
        separator = "" if text == "" or text.endswith("\n") else "\n"
        path.write_text(text + separator + block, encoding="utf-8")
        return "added"
    index, raw = last
    if not _is_empty(raw):
        return "kept"
    lines[index] = line if lines[index].endswith("\n") else line.rstrip("\n")
    path.write_text("".join(lines), encoding="utf-8")
    return "filled"
