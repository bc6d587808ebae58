"""End-to-end tests: the real server (uvicorn, in a thread) on a fresh database, driven by
headless Chromium through Playwright.

The browser is Debian's `chromium` at /usr/bin/chromium; Playwright's own browser download
cannot run here. Without that binary every test in this folder is skipped, saying why.

The database is a fresh SQLite file, or, when DEALROOM_TEST_DATABASE_URL is set (the
PostgreSQL run of CI), a fresh PostgreSQL database, so the live updates are also proven
over LISTEN/NOTIFY. Screenshots go to `DEALROOM_SCREENSHOTS` when it names a folder
(`DEALROOM_SCREENSHOTS=docs/screenshots pytest tests/e2e` refreshes the README's), else
to the test run's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dealroom.db.migrate import upgrade
from dealroom.db.session import Database, make_engine
from dealroom_harness.databases import drop_database
from livesite import (
    CATALOGUE,
    CHROMIUM,
    CHROMIUM_ARGS,
    Cast,
    LiveServer,
    add_account,
    add_listing,
    database_url,
    start_server,
)

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason="end-to-end tests need Debian's chromium at /usr/bin/chromium "
        "(apt-get install chromium); Playwright's own browser download cannot run here"
    )
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url, on_postgresql = database_url(tmp_path_factory.mktemp("e2e"))
    engine = make_engine(url)
    upgrade(engine)
    live = start_server(Database(engine))
    yield live
    live.stop()
    engine.dispose()
    if on_postgresql:
        drop_database(url)


@pytest.fixture(scope="session")
def cast(live_server: LiveServer) -> Cast:
    db = live_server.db
    return Cast(
        buyer=add_account(db, "Amal Haddad", "Acme Corp", zone="Asia/Riyadh"),
        seller=add_account(db, "Lina Park", "TechHub Electronics", zone="Asia/Dubai"),
        operator=add_account(db, "Omar Operator", "Dealroom Marketplace", roles=("operator",)),
    )


@pytest.fixture(scope="session")
def catalogue(live_server: LiveServer, cast: Cast) -> list[str]:
    """A few other listings, so the listings page looks like a marketplace."""
    return [add_listing(live_server.db, cast.seller, **fields) for fields in CATALOGUE]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """`new_page(width=…, js=…)` → a page in a browser context of its own (own cookies).
    `page.errors` collects uncaught script errors."""
    contexts: list[Any] = []

    def make(width: int = 1366, height: int = 900, js: bool = True) -> Any:
        ctx = browser.new_context(
            viewport={"width": width, "height": height},
            java_script_enabled=js,
            base_url=live_server.url,
            locale="en-US",
            accept_downloads=True,
        )
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.errors = errors
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: DEALROOM_SCREENSHOTS, else the run's temporary folder."""
    target = os.environ.get("DEALROOM_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
