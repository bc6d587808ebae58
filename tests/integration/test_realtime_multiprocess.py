"""Two API processes on PostgreSQL: LISTEN/NOTIFY carries what is committed through one to
the streams open on the other, and a stream resumed with `Last-Event-ID` misses nothing.

Each API process is `uvicorn --factory dealroom.app:create_app`, configured by
`DEALROOM_DATABASE_URL`, exactly as deployed. Every stream read is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from dealroom.config import Config, normalize_url
from dealroom.db import models as m
from dealroom.db.migrate import upgrade
from dealroom.db.session import Database, make_engine
from dealroom.domain.state import Payload
from dealroom.security import hash_password, issue_token
from dealroom.services import deals
from dealroom.services.uow import UnitOfWork, session_scope, transaction

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
    base = make_url(normalize_url(PG_URL))
    # Unique per run: other runs may share this PostgreSQL server.
    name = f"dealroom_mp_{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    db = Database(make_engine(url, pool_size=4))
    upgrade(db.engine)
    yield db, url
    db.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Api:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_api(db_url: str, log: Path) -> Api:
    port = free_port()
    env = {
        **os.environ,
        "DEALROOM_DATABASE_URL": db_url,
        "DEALROOM_SECRET_KEY": SECRET,
        "DEALROOM_SSE_HEARTBEAT": "0.25",
        "DEALROOM_REALTIME_POLL": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "dealroom.app:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--timeout-graceful-shutdown", "2"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Api(f"http://127.0.0.1:{port}", proc, log)


def wait_until_up(api: Api) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert api.process.poll() is None, f"the API process exited:\n{api.log.read_text()}"
        assert time.monotonic() < deadline, f"the API did not come up:\n{api.log.read_text()}"
        try:
            if httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def stop_api(api: Api) -> None:
    api.process.terminate()
    try:
        api.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        api.process.kill()
        api.process.wait(timeout=10)


@pytest.fixture(scope="module")
def apis(database: tuple[Database, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Api]]:  # fmt: skip
    logs = tmp_path_factory.mktemp("api-logs")
    started = [start_api(database[1], logs / f"{name}.log") for name in ("a", "b")]
    try:
        for api in started:
            wait_until_up(api)
        yield started[0], started[1]
    finally:
        for api in started:
            api.process.terminate()
        for api in started:
            stop_api(api)


# --- people and a deal --------------------------------------------------------------------


@dataclass
class Person:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_person(db: Database, email: str, now: datetime) -> Person:
    with session_scope(db) as s:
        existing = s.execute(select(m.User).where(m.User.email == email)).scalar_one_or_none()
        if existing is None:
            existing = m.User(email=email, name=email.split("@")[0].title(),
                              password_hash=hash_password("correct horse battery"), roles=[],
                              kyc_verified=True, plan="paid", timezone="UTC",
                              created_at=now - timedelta(days=365))  # fmt: skip
            s.add(existing)
            s.flush()
        uid = existing.id
    return Person(uid, issue_token(SECRET, uid, now=now, ttl_seconds=3600)[0])


@dataclass
class Room:
    deal_id: str
    buyer: Person
    seller: Person


@pytest.fixture
def room(database: tuple[Database, str]) -> Room:
    db = database[0]
    now = datetime.now(UTC)
    buyer = add_person(db, "buyer@acme.test", now)
    seller = add_person(db, "seller@parts.test", now)
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


@dataclass
class Message:
    event: str
    id: str | None
    data: Any


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.last_id: str | None = None

    def next(self, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "" and fields:
                msg = Message(fields.get("event", "message"), fields.get("id"),
                              json.loads(fields["data"]) if "data" in fields else None)  # fmt: skip
                self.last_id = msg.id or self.last_id
                return msg
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message within {timeout} s")
        raise EOFError("the stream closed")

    def until(self, done: Callable[[Message], bool], timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        got = []
        while not got or not done(got[-1]):
            got.append(self.next(max(deadline - time.monotonic(), 0.01)))
        return got


@contextmanager
def open_stream(url: str, who: Person, last_event_id: str | None = None) -> Iterator[Stream]:
    headers = dict(who.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=3.0)) as c,
        c.stream("GET", url, headers=headers) as r,
    ):
        assert r.status_code == 200, r.read()
        yield Stream(r)


def move(api: Api, who: Person, deal_id: str, name: str, **body: Any) -> None:
    deal = httpx.get(f"{api.url}/v1/deals/{deal_id}", headers=who.headers, timeout=5).json()
    r = httpx.post(f"{api.url}/v1/deals/{deal_id}/transitions",
                   json={"name": name, "expected_version": deal["version"], **body},
                   headers=who.headers, timeout=5)  # fmt: skip
    assert r.status_code == 200, r.text


def say(api: Api, who: Person, deal_id: str, body: str) -> None:
    r = httpx.post(f"{api.url}/v1/deals/{deal_id}/messages", json={"body": body},
                   headers=who.headers, timeout=5)  # fmt: skip
    assert r.status_code == 201, r.text


def deal_events(msgs: list[Message]) -> list[Message]:
    return [x for x in msgs if x.event == "deal-event"]


# --- the tests ----------------------------------------------------------------------------


def test_a_counter_made_through_one_process_reaches_a_stream_on_the_other(apis: tuple[Api, Api], room: Room) -> None:  # fmt: skip
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


def test_a_subscriber_that_disconnects_and_resumes_elsewhere_misses_nothing(apis: tuple[Api, Api], room: Room, database: tuple[Database, str]) -> None:  # fmt: skip
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


def test_an_event_too_big_for_notify_travels_by_reference(apis: tuple[Api, Api], room: Room) -> None:  # fmt: skip
    a, b = apis
    body = "€" * 5000  # 15,000 bytes of UTF-8: well over NOTIFY's 8,000
    with open_stream(f"{a.url}/v1/deals/{room.deal_id}/stream", room.seller) as stream:
        stream.next(5)
        say(b, room.buyer, room.deal_id, body)
        got = deal_events(stream.until(lambda x: x.event == "deal-event", timeout=5))
    assert got[0].data["payload"]["body"] == body
