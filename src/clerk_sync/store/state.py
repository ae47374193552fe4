"""Named values kept between runs (``sync_state``): the backfill's checkpoints, for one."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .schema import Tables


def get(conn: Connection, tables: Tables, name: str) -> str | None:
    t = tables.sync_state
    return conn.execute(select(t.c.value).where(t.c.name == name)).scalar()


def put(conn: Connection, tables: Tables, name: str, value: str, now_ms: int) -> None:
    t = tables.sync_state
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(t)
    conn.execute(
        ins.values(name=name, value=value, updated_at=now_ms).on_conflict_do_update(
            index_elements=[t.c.name], set_={"value": value, "updated_at": now_ms}
        )
    )


def forget(conn: Connection, tables: Tables, name: str) -> None:
    t = tables.sync_state
    conn.execute(delete(t).where(t.c.name == name))
