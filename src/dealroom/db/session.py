"""Engines and sessions, on SQLite and PostgreSQL alike.

SQLite runs in WAL mode with foreign keys on; a write transaction starts with
`BEGIN IMMEDIATE` so two writers queue for the lock instead of failing half-way, which
makes optimistic concurrency behave as on PostgreSQL. Reads begin deferred and run
concurrently with the writer.

On PostgreSQL, psycopg prepares a statement once a connection has run it five times, and
after a few more runs PostgreSQL keeps one plan for it instead of planning every run (the
deal's read joins nine tables and costs PostgreSQL 3-4 ms of CPU to plan). Two things keep
those plans: the pool hands out the connection used last (LIFO), so the few busy
connections are the warm ones; and a transaction that only read ends with COMMIT
(`services.uow.transaction`), because psycopg forgets every statement it prepared on a
connection when that connection rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, echo: bool = False, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=30,
        pool_use_lifo=True,
    )


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event below emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@dataclass
class Database:
    """One engine and its two session factories: reads, and writes."""

    engine: Engine

    def __post_init__(self) -> None:
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        write_bind = (
            self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        )
        self._write = sessionmaker(write_bind, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self, *, write: bool = True) -> Session:
        """A new session. Open it through `services.uow.transaction()` (or
        `session_scope`), the one commit path: it commits even a transaction that only
        read (closing a session with a transaction open rolls it back, which costs the
        connection its prepared statements on PostgreSQL)."""
        return (self._write if write else self._read)()
