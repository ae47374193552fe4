"""A cleanup hook for ``test_writer.py``, importable by name in the writer process."""

from __future__ import annotations

from sqlalchemy import Connection


def refuse_to_delete(_conn: Connection, user_id: str) -> None:
    raise RuntimeError(f"refusing to clean up {user_id}")
