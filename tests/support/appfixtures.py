"""The fixtures of the HTTP and web tests: the real app on a real database (SQLite, or
PostgreSQL in CI), a clock the tests move, people with tokens. Loaded for every suite by
tests/conftest.py (`pytest_plugins`); a fixture is only made when a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dbsupport import drop_database, empty_tables, fresh_database
from dealroom.app import create_app
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db.session import Database
from dealroom.realtime.hub import RealtimeSettings
from dealroom_harness.servers import ThreadedServer
from factories import T0
from people import TEST_SECRET, Person, add_user


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = fresh_database(Path(tmp_path_factory.mktemp("db")))
    yield db
    drop_database(db)


@pytest.fixture
def db(database: Database) -> Database:
    empty_tables(database)
    return database


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


@pytest.fixture
def app(db: Database, clock: TestClock):  # type: ignore[no-untyped-def]
    config = Config(database_url=str(db.engine.url), secret_key=TEST_SECRET)
    return create_app(config, database=db, clock=clock)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def people(db: Database, clock: TestClock) -> dict[str, Person]:
    now = clock.now()
    return {
        "buyer": add_user(db, now, "buyer@acme.example", organization="Acme Corp"),
        "seller": add_user(db, now, "seller@parts.example", organization="Parts Inc"),
        "other": add_user(db, now, "other@elsewhere.example"),
        "operator": add_user(db, now, "ops@market.example", roles=("operator",)),
    }


#: Live streams that notice things quickly (heartbeats, the tail poll) for tests.
FAST_REALTIME = RealtimeSettings(heartbeat_seconds=0.25, poll_seconds=0.3, send_timeout_seconds=5)


@pytest.fixture
def server(app) -> Iterator[ThreadedServer]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a free port, for tests that need real HTTP (streams)."""
    app.state.broker.hub.settings = FAST_REALTIME
    live = ThreadedServer(app).start(timeout=15)
    try:
        yield live
    finally:
        assert live.stop(timeout=15), "uvicorn did not stop"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=3.0)) as c:
        yield c
