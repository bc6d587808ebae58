"""The pieces of the end-to-end tests: a live server on a fresh database, accounts and
listings made through the services, signing in through the login page."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from dealroom.app import create_app
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services import accounts, listings
from dealroom.services.uow import session_scope
from dealroom_harness.databases import create_database
from dealroom_harness.servers import ThreadedServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "dealroom-e2e-signing-key-32-bytes-or-longer"
PASSWORD = "e2e-password-123"
PG_URL = os.environ.get("DEALROOM_TEST_DATABASE_URL")


# --- the server ---------------------------------------------------------------------------


def database_url(tmp: Path) -> tuple[str, bool]:
    """A fresh database: its url, and whether it is a PostgreSQL one to drop afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if not PG_URL:
        return f"sqlite:///{tmp / f'e2e-{worker}.db'}", False
    run = (os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid()))[:10]
    return create_database(PG_URL, f"dealroom_e2e_{run}_{worker}"), True


@dataclass
class LiveServer:
    db: Database
    server: ThreadedServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop(timeout=10)


def start_server(db: Database, port: int | None = None) -> LiveServer:
    """A new app (with its own realtime broker) served by uvicorn in a thread, on `port`
    (a server coming back) or a free one."""
    url = db.engine.url.render_as_string(hide_password=False)
    app = create_app(Config(database_url=url, secret_key=SECRET), database=db)
    server = ThreadedServer(app, port=port or 0, graceful_seconds=1)
    return LiveServer(db, server.start(timeout=20))


# --- people and listings --------------------------------------------------------------------

_serial = itertools.count(1)


@dataclass
class Account:
    id: str
    email: str
    name: str
    organization: str


@dataclass
class Cast:
    buyer: Account
    seller: Account
    operator: Account


def add_account(
    db: Database, name: str, organization: str, *, roles: tuple[str, ...] = (), zone: str = "UTC"
) -> Account:
    n = next(_serial)
    email = f"{name.split()[0].lower()}.{n}@{organization.split()[0].lower()}.example"
    with session_scope(db) as s:
        user = accounts.create_user(
            s, email=email, name=name, password=PASSWORD,
            now=datetime.now(UTC) - timedelta(days=420), organization=organization,
            roles=roles, kyc_verified=True, plan="paid", timezone=zone,
        )  # fmt: skip
        return Account(user.id, email, name, organization)


def add_listing(db: Database, owner: Account, **fields: Any) -> str:
    body: dict[str, Any] = {
        "title": "Dell Latitude 7420 laptops, grade A",
        "description": "Refurbished, i5 11th gen, 16 GB RAM, 512 GB SSD, 90-day warranty.",
        "category": "laptops",
        "currency": "USD",
        "unit_price": Decimal("420.00"),
        "quantity": 200,
        "min_order_qty": 10,
        "sale_mode": "negotiable",
        "attributes": {"grade": "A", "warranty_days": 90},
        **fields,
    }
    with session_scope(db) as s:
        user = s.get(m.User, owner.id)
        assert user is not None
        return listings.create_listing(s, user, body, datetime.now(UTC)).id


CATALOGUE: tuple[dict[str, Any], ...] = (
    {"title": "USB-C docking stations, dual 4K", "category": "electronics", "unit_price": "89.00",
     "quantity": 500, "min_order_qty": None, "sale_mode": "buy_now", "description": None,
     "attributes": {}},
    {"title": "M8 hex bolts, zinc plated (box of 100)", "category": "industrial-parts",
     "currency": "SAR", "unit_price": "50.00", "quantity": 1000, "min_order_qty": 100,
     "description": "DIN 933, grade 8.8, zinc plated. Ships from Dammam.", "process": "rfq",
     "attributes": {"standard": "DIN 933"}},
    {"title": "Steel rebar 12 mm, per tonne", "category": "construction", "currency": "SAR",
     "unit_price": "2450.00", "quantity": 300, "min_order_qty": 5, "attributes": {},
     "description": "B500B, 12 m bars, mill certificate included."},
    {"title": "Used CNC machining centre, Haas VF-2 (2018)", "category": "machinery",
     "unit_price": "48000.00", "quantity": 1, "min_order_qty": None, "process": "offer",
     "description": "6,200 spindle hours, serviced yearly, tooling included.", "attributes": {}},
    {"title": "Surplus copper cable, 2 tonnes", "category": "metals", "unit_price": "9200.00",
     "quantity": 2, "min_order_qty": None, "sale_mode": "auction", "attributes": {},
     "description": None},
)  # fmt: skip


# --- the browser ----------------------------------------------------------------------------


def sign_in(page: Any, account: Account) -> None:
    page.goto("/login")
    page.fill("#email", account.email)
    page.fill("#password", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_url(lambda url: "/login" not in url)
