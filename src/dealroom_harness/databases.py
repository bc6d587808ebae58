"""Scratch PostgreSQL databases, made beside the one a base URL names and dropped after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dealroom.config import normalize_url
from dealroom.db.migrate import upgrade
from dealroom.db.session import make_engine


def autocommit(url: str, *statements: str) -> None:
    """Run statements that cannot run in a transaction (CREATE and DROP DATABASE, VACUUM,
    CHECKPOINT) on the database at `url`, on an engine of their own: the server may have
    restarted since the last call."""
    engine = create_engine(make_url(normalize_url(url)), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for sql in statements:
                conn.execute(text(sql))
    finally:
        engine.dispose()


def create_database(base_url: str, name: str) -> str:
    """A new, empty database `name` on the server of `base_url` (whatever a crashed run left
    under that name is dropped first); answers its URL."""
    autocommit(
        base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    base = make_url(normalize_url(base_url))
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database `url` names, through the server's `postgres` database."""
    target = make_url(normalize_url(url))
    admin = target.set(database="postgres").render_as_string(hide_password=False)
    autocommit(admin, f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def migrate(url: str) -> None:
    """Bring the database at `url` to the head revision."""
    engine = make_engine(url, pool_size=2)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@contextmanager
def scratch_database(base_url: str, name: str, *, migrated: bool = True) -> Iterator[str]:
    """A fresh database `name` beside `base_url`'s, at the head revision unless `migrated`
    is False, dropped afterwards. Yields its URL."""
    url = create_database(base_url, name)
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        drop_database(url)
