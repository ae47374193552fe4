"""A fresh, migrated database for one benchmark run: a SQLite file, or a PostgreSQL database
(at CLERK_SYNC_BENCH_POSTGRES_URL) dropped and created again under a name of its own."""

from __future__ import annotations

import os
from pathlib import Path

from clerk_sync.store import make_engine, upgrade

PG_ADMIN = os.environ.get(
    "CLERK_SYNC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def fresh_database(backend: str, workdir: Path, name: str) -> str:
    """The URL of an empty database with clerk-sync's schema, named after ``name``."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'bench_{name}.db'}"
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        database = f"clerk_sync_bench_{name}_{os.getpid()}"
        admin = make_url(PG_ADMIN).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{database}"')
            c.execute(f'CREATE DATABASE "{database}"')
        url = admin.set(drivername="postgresql+psycopg", database=database).render_as_string(
            hide_password=False
        )
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url
