"""PostgreSQL plans a statement once a connection has prepared it, and psycopg forgets every
statement it prepared on a connection when that connection rolls back. The pool reuses
the connection used last, and transactions that only read end with COMMIT, so the busy
connections keep their plans (the deal's nine-table read costs 3-4 ms of PostgreSQL CPU
to plan each time it is not prepared)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dbsupport import PG_URL
from dealroom.db import models as m
from dealroom.db.session import Database, make_engine
from dealroom.realtime.hub import Hub
from dealroom.services.uow import session_scope

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL, reason="prepared statements are PostgreSQL's: set DEALROOM_TEST_DATABASE_URL"
    ),
]

#: A statement run often enough on one connection to be prepared (psycopg: 5 runs).
OFTEN = 8
_DEAL = select(m.Deal.id).where(m.Deal.id == bindparam("id"))


@pytest.fixture
def one_connection(db: Database) -> Iterator[Database]:
    """The test database through a pool that hands out one connection at a time."""
    with pool_of(db, 1) as engine:
        yield Database(engine)


@contextmanager
def pool_of(db: Database, size: int) -> Iterator[Engine]:
    """An engine of the application's own making on the test database, `size` connections."""
    engine = make_engine(db.engine.url.render_as_string(hide_password=False), pool_size=size)
    try:
        yield engine
    finally:
        engine.dispose()


def prepared(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one())


def warm(db: Database) -> int:
    for _ in range(OFTEN):
        with session_scope(db) as s:
            s.execute(_DEAL, {"id": "no-such-deal"})
    with session_scope(db, write=False) as s:
        return prepared(s)


def test_a_read_that_commits_keeps_the_prepared_statements(one_connection: Database) -> None:
    assert warm(one_connection) >= 1
    with session_scope(one_connection, write=False) as s:
        s.execute(_DEAL, {"id": "no-such-deal"})
    with session_scope(one_connection, write=False) as s:
        assert prepared(s) >= 1


def test_the_pool_hands_out_the_connection_used_last(db: Database) -> None:
    pid = text("SELECT pg_backend_pid()")
    with pool_of(db, 2) as engine:
        first, second = engine.connect(), engine.connect()
        first_pid = first.execute(pid).scalar_one()
        second.close()
        first.close()  # returned last
        with engine.connect() as again:
            assert again.execute(pid).scalar_one() == first_pid


def test_a_session_closed_with_its_transaction_open_loses_them(one_connection: Database) -> None:
    """What `Database.transaction` guards against (psycopg's own behaviour)."""
    assert warm(one_connection) >= 1
    s = one_connection.session(write=False)
    s.execute(_DEAL, {"id": "no-such-deal"})
    s.close()  # ROLLBACK
    with session_scope(one_connection, write=False) as s:
        assert prepared(s) == 0


def test_the_realtime_hub_reads_without_rolling_back(one_connection: Database) -> None:
    """The hub reads the feed's tails about once a second in every API process."""
    assert warm(one_connection) >= 1
    hub = Hub(one_connection)
    hub.prime()
    hub.catch_up()
    with session_scope(one_connection, write=False) as s:
        assert prepared(s) >= 1
