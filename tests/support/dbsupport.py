"""Test databases: SQLite by default, PostgreSQL when DEALROOM_TEST_DATABASE_URL is set.

Each pytest-xdist worker gets its own database (PostgreSQL) or file (SQLite), migrated
once with Alembic; tests start from empty tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from dealroom.db.migrate import upgrade
from dealroom.db.models import Base
from dealroom.db.session import Database, make_engine
from dealroom_harness import databases

PG_URL = os.environ.get("DEALROOM_TEST_DATABASE_URL")


def worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_id() -> str:
    """Unique per pytest run, shared by its xdist workers: concurrent runs never collide."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return uid[:10] if uid else str(os.getpid())


def database_url(tmp_dir: Path) -> str:
    if not PG_URL:
        return f"sqlite:///{tmp_dir / f'dealroom-{worker()}.db'}"
    return databases.create_database(PG_URL, f"dealroom_test_{run_id()}_{worker()}")


def fresh_database(tmp_dir: Path) -> Database:
    url = database_url(tmp_dir)
    engine = make_engine(url, pool_size=24)
    upgrade(engine)
    return Database(engine)


def empty_tables(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    # DELETE, not TRUNCATE: on small tables it is ~100x faster on PostgreSQL (2 ms vs 240 ms).
    with db.engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))


def drop_database(db: Database) -> None:
    """Remove a PostgreSQL test database made by `fresh_database`."""
    url = db.engine.url
    db.engine.dispose()
    if url.get_backend_name() != "postgresql" or not (url.database or "").startswith(
        "dealroom_test_"
    ):
        return
    databases.drop_database(url.render_as_string(hide_password=False))
