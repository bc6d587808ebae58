"""Two API processes on PostgreSQL: LISTEN/NOTIFY carries what is committed through one to
the streams open on the other, and a stream resumed with `Last-Event-ID` misses nothing.

Each API process is `uvicorn --factory dealroom.app:create_app`, configured by
`DEALROOM_DATABASE_URL`, exactly as deployed. Every stream read is bounded.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database, make_engine
from dealroom.domain.state import Payload
from dealroom.services import deals
from dealroom.services.uow import UnitOfWork, transaction
from dealroom_harness.databases import scratch_database
from dealroom_harness.people import Person
from dealroom_harness.people import add_person as harness_person
from dealroom_harness.servers import Server, running, uvicorn_command
from sse import Stream, deal_events
from sse import open_stream as sse_stream

PG_URL = os.environ.get("DEALROOM_TEST_DATABASE_URL")
SECRET = "dealroom-multiprocess-signing-key-32-bytes-at-least"
COUNTER_MESSAGE = "Volume discount expected for this quantity"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set DEALROOM_TEST_DATABASE_URL"),
]


# --- a database and two API processes -----------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[Database, str]]:
    assert PG_URL
    # Unique per run: other runs may share this PostgreSQL server.
    name = f"dealroom_mp_{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    with scratch_database(PG_URL, name) as url:
        db = Database(make_engine(url, pool_size=4))
        yield db, url
        db.engine.dispose()


@pytest.fixture(scope="module")
def apis(database: tuple[Database, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:  # fmt: skip
    logs = tmp_path_factory.mktemp("api-logs")
    env = {"DEALROOM_DATABASE_URL": database[1], "DEALROOM_SECRET_KEY": SECRET,
           "DEALROOM_SSE_HEARTBEAT": "0.25", "DEALROOM_REALTIME_POLL": "1"}  # fmt: skip
    cmd = uvicorn_command("--log-level", "warning", "--timeout-graceful-shutdown", "2")
    a, b = (Server(cmd, env=env, log=logs / f"{name}.log", name=f"API process {name}")
            for name in ("a", "b"))  # fmt: skip
    with running(a, b):
        yield a, b


# --- people and a deal --------------------------------------------------------------------

_serial = itertools.count(1)


def add_person(db: Database, role: str, domain: str) -> Person:
    """A new user each time: the database lives as long as the module, the room one test."""
    email = f"{role}{next(_serial)}@{domain}"
    return harness_person(db, email, secret=SECRET, token_seconds=3600)


@dataclass
class Room:
    deal_id: str
    buyer: Person
    seller: Person


@pytest.fixture
def room(database: tuple[Database, str]) -> Room:
    db = database[0]
    buyer = add_person(db, "buyer", "acme.test")
    seller = add_person(db, "seller", "parts.test")
    config = Config(database_url="unused", secret_key=SECRET)

    def tx(fn: Callable[[UnitOfWork, m.User, m.User], Any]) -> Any:
        with transaction(db, config=config) as uow:
            b, sl = uow.session.get(m.User, buyer.id), uow.session.get(m.User, seller.id)
            assert b is not None
            assert sl is not None
            return fn(uow, b, sl)

    def listing(uow: UnitOfWork, _b: m.User, sl: m.User) -> str:
        row = m.Listing(owner_id=sl.id, title="Industrial bearings", currency="SAR",
                        unit_price=Decimal("50.00"), quantity=1000, process="rfq",
                        created_at=uow.now, updated_at=uow.now)  # fmt: skip
        uow.session.add(row)
        uow.session.flush()
        return row.id

    listing_id = tx(listing)
    deal_id = tx(lambda uow, b, _s: str(deals.open_deal(
        uow, b, listing_id=listing_id, transition="request-quote",
        payload=Payload(terms={"quantity": 1000}, message="Need for Q2")).deal.id))  # fmt: skip
    tx(lambda uow, _b, sl: deals.fire_transition(
        uow, sl, deal_id=deal_id, name="send-quote", expected_version=1,
        payload=Payload(terms={"unit_price": "50.00", "lead_time_days": 7})))  # fmt: skip
    return Room(deal_id, buyer, seller)


# --- reading streams ----------------------------------------------------------------------


@contextmanager
def open_stream(url: str, who: Person, last_event_id: str | None = None) -> Iterator[Stream]:
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=3.0)) as c,
        sse_stream(c, url, who.token, last_event_id=last_event_id) as stream,
    ):
        yield stream


def move(api: Server, who: Person, deal_id: str, name: str, **body: Any) -> None:
    deal = httpx.get(f"{api.url}/v1/deals/{deal_id}", headers=who.headers, timeout=5).json()
    r = httpx.post(f"{api.url}/v1/deals/{deal_id}/transitions",
                   json={"name": name, "expected_version": deal["version"], **body},
                   headers=who.headers, timeout=5)  # fmt: skip
    assert r.status_code == 200, r.text


def say(api: Server, who: Person, deal_id: str, body: str) -> None:
    r = httpx.post(f"{api.url}/v1/deals/{deal_id}/messages", json={"body": body},
                   headers=who.headers, timeout=5)  # fmt: skip
    assert r.status_code == 201, r.text


# --- the tests ----------------------------------------------------------------------------


def test_a_counter_made_through_one_process_reaches_a_stream_on_the_other(apis: tuple[Server, Server], room: Room) -> None:  # fmt: skip
    a, b = apis
    with open_stream(f"{a.url}/v1/deals/{room.deal_id}/stream", room.seller) as deal_stream, \
         open_stream(f"{a.url}/v1/me/stream", room.seller) as my_stream:  # fmt: skip
        deal_stream.next(5)
        my_stream.next(5)
        started = time.monotonic()
        move(
            b,
            room.buyer,
            room.deal_id,
            "counter",
            terms={"unit_price": "45.00"},
            message=COUNTER_MESSAGE,
        )
        got = deal_events(deal_stream.until(lambda x: x.event == "deal-event", timeout=5))
        elapsed = time.monotonic() - started
        mine = my_stream.until(lambda x: x.event == "notification", timeout=5)
    assert got[0].data["type"] == "COUNTER_SUBMITTED"
    assert got[0].data["payload"]["terms"]["unit_price"] == "45.00"
    assert elapsed < 2  # NOTIFY, not the tail poll
    assert [x.data["type"] for x in deal_events(mine)] == ["COUNTER_SUBMITTED"]
    assert mine[-1].data["name"] == "counter-submitted"


def test_a_subscriber_that_disconnects_and_resumes_elsewhere_misses_nothing(apis: tuple[Server, Server], room: Room, database: tuple[Database, str]) -> None:  # fmt: skip
    a, b = apis
    with open_stream(f"{a.url}/v1/deals/{room.deal_id}/stream", room.buyer) as stream:
        stream.next(5)
        say(b, room.seller, room.deal_id, "one")
        say(a, room.seller, room.deal_id, "two")
        first = deal_events(stream.until(lambda x: x.data.get("payload", {}).get("body") == "two"))
        resume_from = stream.last_id
    assert resume_from is not None
    for i in range(6):  # while away, through both processes
        say(a if i % 2 else b, room.seller, room.deal_id, f"away {i}")
    move(
        b,
        room.buyer,
        room.deal_id,
        "counter",
        terms={"unit_price": "45.00"},
        message=COUNTER_MESSAGE,
    )
    with database[0].session(write=False) as s:
        head = s.execute(select(m.Deal.last_seq).where(m.Deal.id == room.deal_id)).scalar_one()
    with open_stream(f"{b.url}/v1/deals/{room.deal_id}/stream", room.buyer, resume_from) as stream:
        replay = stream.until(lambda x: x.event == "ready")
        say(a, room.seller, room.deal_id, "live from a")
        live = deal_events(stream.until(lambda x: x.event == "deal-event"))
    seqs = [x.data["seq"] for x in first + deal_events(replay) + live]
    assert seqs == list(range(seqs[0], head + 2))
    assert live[0].data["payload"]["body"] == "live from a"


def test_an_event_too_big_for_notify_travels_by_reference(apis: tuple[Server, Server], room: Room) -> None:  # fmt: skip
    a, b = apis
    body = "€" * 5000  # 15,000 bytes of UTF-8: well over NOTIFY's 8,000
    with open_stream(f"{a.url}/v1/deals/{room.deal_id}/stream", room.seller) as stream:
        stream.next(5)
        say(b, room.buyer, room.deal_id, body)
        got = deal_events(stream.until(lambda x: x.event == "deal-event", timeout=5))
    assert got[0].data["payload"]["body"] == body
