"""Shared setup for the short versions of the prove/ checks: the app on a fresh SQLite
database (or PostgreSQL with DEALROOM_TEST_DATABASE_URL), people with tokens, a deal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from proveworld import World

from dbsupport import drop_database, empty_tables, fresh_database
from dealroom.db.session import Database


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """These checks run in `make prove-quick` / `make prove` (DEALROOM_PROVE=1), not in the
    ordinary suite, so CI pays for them once."""
    if os.environ.get("DEALROOM_PROVE") == "1":
        return
    skip = pytest.mark.skip(reason="prove checks: run `make prove-quick` (DEALROOM_PROVE=1)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def prove_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = fresh_database(Path(tmp_path_factory.mktemp("prove-db")))
    empty_tables(db)
    yield db
    drop_database(db)


@pytest.fixture(scope="module")
def world(prove_db: Database) -> Iterator[World]:
    w = World(prove_db)
    with w.client:
        yield w
