"""Live streams over real HTTP: uvicorn in a thread on a free port, httpx reading the SSE.

Every read is bounded (heartbeats every 0.25 s keep the lines coming; a read that finds
nothing within its timeout fails the test instead of hanging it).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from dbsupport import PG_URL
from dealroom.api import routes_stream
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.state import Payload
from dealroom.realtime import hub as realtime
from dealroom.realtime.brokers import notify_payloads
from dealroom.realtime.hub import NOTIFY_LIMIT, Hub, RealtimeSettings
from dealroom.security import issue_token
from dealroom.services import deals
from dealroom.services import feed as event_feed
from dealroom.services.outbox import OutboxItem
from dealroom.services.uow import UnitOfWork, transaction
from dealroom_harness.servers import ThreadedServer
from people import TEST_SECRET, Person, add_user
from servicedeals import add_listing
from sse import deal_events, open_stream

CONFIG = Config(database_url="unused", secret_key=TEST_SECRET)
COUNTER_MESSAGE = "Volume discount expected for this quantity"


# --- a deal room --------------------------------------------------------------------------


@dataclass
class Room:
    deal_id: str
    buyer: Person
    seller: Person
    outsider: Person
    operator: Person


def in_tx(
    db: Database, clock: TestClock, fn: Callable[[UnitOfWork], Any]
) -> tuple[Any, list[OutboxItem]]:
    with transaction(db, now=clock.now(), config=CONFIG) as uow:
        result = fn(uow)
    return result, uow.outbox


def user(db: Database, person: Person) -> m.User:
    with db.session(write=False) as s:
        row = s.get(m.User, person.id)
        assert row is not None
        return row


def open_rfq(db: Database, clock: TestClock, buyer: Person, seller: Person) -> str:
    """A listing and an rfq deal where the seller has quoted 50.00 (the buyer's turn)."""
    listing_id = add_listing(db, clock, seller.id)
    result, _ = in_tx(db, clock, lambda uow: deals.open_deal(
        uow, user(db, buyer), listing_id=listing_id, transition="request-quote",
        payload=Payload(terms={"quantity": 1000}, message="Need for Q2")))  # fmt: skip
    deal_id = str(result.deal.id)
    in_tx(db, clock, lambda uow: deals.fire_transition(
        uow, user(db, seller), deal_id=deal_id, name="send-quote", expected_version=1,
        payload=Payload(terms={"unit_price": "50.00", "lead_time_days": 7})))  # fmt: skip
    return deal_id


@pytest.fixture
def room(db: Database, clock: TestClock) -> Room:
    buyer = add_user(db, clock.now(), "buyer@acme.test", organization="Acme Corp")
    seller = add_user(db, clock.now(), "seller@parts.test", organization="Parts Inc")
    outsider = add_user(db, clock.now(), "nosy@elsewhere.test")
    operator = add_user(db, clock.now(), "ops@market.test", roles=("operator",))
    return Room(open_rfq(db, clock, buyer, seller), buyer, seller, outsider, operator)


def counter(
    http: httpx.Client, server: ThreadedServer, who: Person, deal_id: str, price: str
) -> dict[str, Any]:
    deal = http.get(f"{server.url}/v1/deals/{deal_id}", headers=who.headers).json()
    r = http.post(
        f"{server.url}/v1/deals/{deal_id}/transitions",
        json={"name": "counter", "expected_version": deal["version"],
              "terms": {"unit_price": price}, "message": COUNTER_MESSAGE},
        headers=who.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def say(http: httpx.Client, server: ThreadedServer, who: Person, deal_id: str, body: str) -> None:
    r = http.post(
        f"{server.url}/v1/deals/{deal_id}/messages", json={"body": body}, headers=who.headers
    )
    assert r.status_code == 201, r.text


def last_seq(db: Database, deal_id: str) -> int:
    with db.session(write=False) as s:
        return int(s.execute(select(m.Deal.last_seq).where(m.Deal.id == deal_id)).scalar_one())


# --- the deal stream ----------------------------------------------------------------------


def test_a_counter_offer_reaches_the_sellers_deal_stream(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    head = last_seq(db, room.deal_id)
    with open_stream(
        http, f"{server.url}/v1/deals/{room.deal_id}/stream", room.seller.token
    ) as stream:
        ready = stream.next()
        assert (ready.event, ready.id, ready.data) == (
            "ready",
            str(head),
            {"deal_id": room.deal_id, "seq": head},
        )
        counter(http, server, room.buyer, room.deal_id, "45.00")
        got = stream.until(lambda x: x.event == "deal-event")[-1]
    assert got.id == str(head + 1)
    event = got.data
    assert event["type"] == "COUNTER_SUBMITTED"
    assert (event["seq"], event["deal_id"], event["actor_type"]) == (
        head + 1,
        room.deal_id,
        "buyer",
    )
    assert event["payload"]["terms"]["unit_price"] == "45.00"
    assert set(event) >= {"seq", "type", "deal_id", "actor_id", "actor_type", "from_state",
                          "to_state", "payload", "created_at", "prev_hash", "hash"}  # fmt: skip


def test_an_operator_may_watch_a_deal_and_an_outsider_gets_404(server: ThreadedServer, http: httpx.Client, room: Room) -> None:  # fmt: skip
    url = f"{server.url}/v1/deals/{room.deal_id}/stream"
    with open_stream(http, url, room.operator.token) as stream:
        assert stream.next().event == "ready"
    r = http.get(url, headers=room.outsider.headers)
    assert r.status_code == 404
    assert r.json()["code"] == "NEG-011"
    assert (
        http.get(f"{server.url}/v1/deals/{'0' * 36}/stream", headers=room.buyer.headers).status_code
        == 404
    )
    assert http.get(url).status_code == 401
    for bad_id in ("seven", "-1", "99"):  # not a seq, or one this deal has not reached
        bad = http.get(url, headers={**room.buyer.headers, "Last-Event-ID": bad_id})
        assert (bad.status_code, bad.json()["field"]) == (422, "Last-Event-ID")


def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    url = f"{server.url}/v1/deals/{room.deal_id}/stream"
    with open_stream(http, url, room.seller.token) as stream:
        stream.next()  # ready
        say(http, server, room.buyer, room.deal_id, "first")
        say(http, server, room.seller, room.deal_id, "second")
        seen = deal_events(
            stream.until(lambda x: x.data.get("payload", {}).get("body") == "second")
        )
        resume_from = stream.last_id
    assert resume_from is not None
    # While away: a counter and two messages.
    counter(http, server, room.buyer, room.deal_id, "46.00")
    say(http, server, room.seller, room.deal_id, "third")
    say(http, server, room.buyer, room.deal_id, "fourth")
    missed_upto = last_seq(db, room.deal_id)
    with open_stream(http, url, room.seller.token, last_event_id=resume_from) as stream:
        replay = stream.until(lambda x: x.event == "ready")
        say(http, server, room.buyer, room.deal_id, "live")
        live = deal_events(stream.until(lambda x: x.event == "deal-event"))
    replayed = deal_events(replay)
    assert [int(x.id or 0) for x in replayed] == list(range(int(resume_from) + 1, missed_upto + 1))
    assert [x.data["seq"] for x in replayed] == [int(x.id or 0) for x in replayed]
    assert "COUNTER_SUBMITTED" in [x.data["type"] for x in replayed]
    assert replay[-1].id == str(missed_upto)
    assert [x.data["payload"].get("body") for x in live] == ["live"]
    assert live[0].data["seq"] == missed_upto + 1
    assert [x.data["seq"] for x in seen] == [int(resume_from) - 1, int(resume_from)]


def test_replay_and_live_meet_without_a_gap_or_a_repeat(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    """Messages keep arriving while a client resumes from an early id: whatever is read from
    the database and whatever arrives live, each seq comes exactly once, in order."""
    start = last_seq(db, room.deal_id)
    total = 30
    stop = threading.Event()

    def chatter() -> None:
        with httpx.Client(timeout=5.0) as c:
            for i in range(total):
                if stop.is_set():
                    return
                who = room.buyer if i % 2 else room.seller
                say(c, server, who, room.deal_id, f"message {i}")

    writer = threading.Thread(target=chatter)
    writer.start()
    try:
        while last_seq(db, room.deal_id) < start + 5:
            time.sleep(0.01)
        url = f"{server.url}/v1/deals/{room.deal_id}/stream?last_event_id=1"
        with open_stream(http, url, room.buyer.token) as stream:
            got = deal_events(stream.until(
                lambda x: x.event == "deal-event" and x.data["seq"] == start + total, timeout=20))  # fmt: skip
    finally:
        stop.set()
        writer.join(timeout=20)
    assert [x.data["seq"] for x in got] == list(range(2, start + total + 1))


def test_heartbeats_keep_an_idle_stream_open(server: ThreadedServer, http: httpx.Client, room: Room) -> None:  # fmt: skip
    with open_stream(
        http, f"{server.url}/v1/deals/{room.deal_id}/stream", room.buyer.token
    ) as stream:
        stream.next()
        assert stream.quiet(0.9) == []
        assert stream.heartbeats >= 2


def test_the_stream_closes_cleanly_when_the_token_expires(server: ThreadedServer, http: httpx.Client, room: Room, clock: TestClock) -> None:  # fmt: skip
    token, _ = issue_token(TEST_SECRET, room.buyer.id, now=clock.now(), ttl_seconds=2)
    started = time.monotonic()
    with open_stream(http, f"{server.url}/v1/deals/{room.deal_id}/stream", token) as stream:
        assert stream.next().event == "ready"
        end = stream.until(lambda x: x.event == "end", timeout=6)[-1]
        assert end.data["reason"] == "token-expired"
        with pytest.raises(EOFError):
            stream.next(timeout=3)
    assert 1.5 < time.monotonic() - started < 6


# --- the caller's stream ------------------------------------------------------------------


def test_my_stream_carries_my_deals_events_and_my_bell_and_marks_them_seen(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    with open_stream(http, f"{server.url}/v1/me/stream", room.seller.token) as stream:
        ready = stream.next()
        assert ready.event == "ready"
        assert re.fullmatch(r"\d+\.\d+", ready.id or "")
        counter(http, server, room.buyer, room.deal_id, "45.00")
        msgs = stream.until(lambda x: x.event == "notification")
        time.sleep(0.3)  # the stream stamps seen_live_at right after the push
    event = deal_events(msgs)[-1]
    note = msgs[-1]
    assert event.data["type"] == "COUNTER_SUBMITTED"
    assert note.data["name"] == "counter-submitted"
    assert note.data["deal_id"] == room.deal_id
    feed, bell = (int(x) for x in (note.id or "").split("."))
    assert feed == event.data["feed_seq"]
    assert bell == note.data["id"]
    with db.session(write=False) as s:
        row = s.get(m.Notification, bell)
        assert row is not None
        assert row.seen_live_at is not None
        # Nobody had a stream open when the seller's quote reached the buyer.
        others = s.scalars(select(m.Notification).where(m.Notification.user_id == room.buyer.id))
        assert [n.seen_live_at for n in others] == [None]


def test_my_stream_resumes_from_its_cursor_with_events_and_notifications(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    url = f"{server.url}/v1/me/stream"
    with open_stream(http, url, room.buyer.token) as stream:
        cursor = stream.next().id
    assert cursor is not None
    counter(http, server, room.buyer, room.deal_id, "45.00")  # an event, no bell for the buyer
    counter(http, server, room.seller, room.deal_id, "48.00")  # an event and the buyer's bell
    other = open_rfq(db, server.app.state.clock, room.seller, room.outsider)  # not the buyer's
    say(http, server, room.outsider, other, "elsewhere")
    with open_stream(http, url, room.buyer.token, last_event_id=cursor) as stream:
        replay = stream.until(lambda x: x.event == "ready")
        say(http, server, room.seller, room.deal_id, "still there?")
        live = stream.until(lambda x: x.event == "deal-event")
    kinds = [(x.event, x.data.get("type") or x.data.get("name")) for x in replay[:-1]]
    assert kinds == [("deal-event", "COUNTER_SUBMITTED"), ("deal-event", "QUOTE_REVISED"),
                     ("notification", "counter-submitted")]  # fmt: skip
    assert all(x.data["deal_id"] == room.deal_id for x in replay[:-1])
    assert replay[-1].id == replay[-2].id
    assert live[-1].data["payload"]["body"] == "still there?"
    assert int((live[-1].id or "").split(".")[0]) == live[-1].data["feed_seq"]
    for bad_id in ("12", "1.x", "99999.0", "0.99999"):
        bad = http.get(url, headers={**room.buyer.headers, "Last-Event-ID": bad_id})
        assert bad.status_code == 422


def test_an_operators_stream_sees_every_deal(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    other = open_rfq(db, server.app.state.clock, room.seller, room.outsider)
    with open_stream(http, f"{server.url}/v1/me/stream", room.operator.token) as stream:
        stream.next()
        say(http, server, room.buyer, room.deal_id, "one")
        say(http, server, room.outsider, other, "two")
        got = deal_events(stream.until(lambda x: x.data.get("payload", {}).get("body") == "two"))
    assert [x.data["payload"]["body"] for x in got] == ["one", "two"]


def test_marking_read_elsewhere_updates_the_unread_count_on_my_stream(server: ThreadedServer, http: httpx.Client, room: Room) -> None:  # fmt: skip
    with open_stream(http, f"{server.url}/v1/me/stream", room.buyer.token) as stream:
        stream.next()
        r = http.post(
            f"{server.url}/v1/me/notifications/read", json={"all": True}, headers=room.buyer.headers
        )
        assert r.json() == {"unread_count": 0}
        got = stream.until(lambda x: x.event == "unread")[-1]
    assert got.data == {"unread_count": 0}
    assert got.id is None


# --- ordering: the feed never skips ---------------------------------------------------------


def test_events_announced_out_of_order_reach_streams_in_feed_order(server: ThreadedServer, http: httpx.Client, room: Room, db: Database, clock: TestClock) -> None:  # fmt: skip
    """Two commits whose announcements race: the later one arrives first. The hub reads
    the earlier one from the database and hands both on in feed order, once each."""
    seller = user(db, room.seller)
    with open_stream(http, f"{server.url}/v1/me/stream", room.seller.token) as stream:
        stream.next()
        _, first = in_tx(
            db, clock, lambda uow: deals.post_message(uow, seller, deal_id=room.deal_id, body="a")
        )
        _, second = in_tx(
            db, clock, lambda uow: deals.post_message(uow, seller, deal_id=room.deal_id, body="b")
        )
        server.app.state.broker.publish(second)
        server.app.state.broker.publish(first)
        got = deal_events(stream.until(lambda x: x.data.get("payload", {}).get("body") == "b"))
        assert stream.quiet(0.5) == []
    assert [x.data["payload"]["body"] for x in got] == ["a", "b"]
    assert got[1].data["feed_seq"] == got[0].data["feed_seq"] + 1


def test_a_commit_never_announced_still_arrives_by_the_tail(server: ThreadedServer, http: httpx.Client, room: Room, db: Database, clock: TestClock) -> None:  # fmt: skip
    """Another process on the same database (a worker, say) commits without telling us."""
    buyer = user(db, room.buyer)
    with open_stream(
        http, f"{server.url}/v1/deals/{room.deal_id}/stream", room.seller.token
    ) as stream:
        stream.next()
        in_tx(
            db,
            clock,
            lambda uow: deals.post_message(uow, buyer, deal_id=room.deal_id, body="quietly"),
        )
        got = deal_events(stream.until(lambda x: x.event == "deal-event", timeout=5))
    assert got[0].data["payload"]["body"] == "quietly"


def test_interleaved_commits_never_let_a_resumed_reader_skip_an_event(server: ThreadedServer, http: httpx.Client, room: Room, db: Database, clock: TestClock) -> None:  # fmt: skip
    """T1 writes an event and is half-way through its commit: its event is numbered, not yet
    visible. T2 writes an event on another deal and commits. The feed lock makes T2 wait
    for T1, so T2's position is after T1's: a reader never sees T2's event while T1's (with
    a smaller number) is still to come."""
    buyer = user(db, room.buyer)
    other = open_rfq(db, clock, room.seller, room.outsider)
    outsider = user(db, room.outsider)
    with open_stream(http, f"{server.url}/v1/me/stream", room.seller.token) as stream:
        stream.next()
        with db.session(write=False) as s:
            before = s.execute(select(func.max(m.Event.feed_seq))).scalar_one()

        s1 = db.session(write=True)
        thread = threading.Thread(target=lambda: None)
        try:
            uow1 = UnitOfWork(session=s1, now=clock.now(), config=CONFIG)
            deals.post_message(uow1, buyer, deal_id=room.deal_id, body="T1")
            event_feed.number_feed(s1)  # the first step of uow1.commit(): numbered, lock held
            t2: dict[str, Any] = {}

            def second() -> None:
                outbox = in_tx(
                    db,
                    clock,
                    lambda uow: deals.post_message(uow, outsider, deal_id=other, body="T2"),
                )[1]
                t2["outbox"] = outbox

            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.6)
            assert thread.is_alive(), "T2 should wait for T1's feed position to commit"
            if PG_URL:
                assert feed_lock_waiters(db) == 1
            # A reader now sees nothing new: no position after T1's is visible before it.
            with db.session(write=False) as s:
                assert (
                    s.execute(select(m.Event.feed_seq).where(m.Event.feed_seq > before)).all() == []
                )
            uow1.commit()
        finally:
            s1.close()
            thread.join(timeout=20)
        assert not thread.is_alive()
        # T2 announces first; T1 is slower to announce.
        server.app.state.broker.publish(t2["outbox"])
        server.app.state.broker.publish(uow1.outbox)
        got = deal_events(stream.until(lambda x: x.data.get("payload", {}).get("body") == "T2"))
    t1_seq, t2_seq = uow1.outbox[0].payload["feed_seq"], t2["outbox"][0].payload["feed_seq"]
    assert t2_seq == t1_seq + 1
    assert [x.data["payload"]["body"] for x in got] == ["T1", "T2"]
    # And a reader resuming after anything it had seen gets the rest, in order.
    r = http.get(f"{server.url}/v1/events", params={"after": before}, headers=room.operator.headers)
    assert [e["feed_seq"] for e in r.json()["items"]] == [t1_seq, t2_seq]


def feed_lock_waiters(db: Database) -> int:
    with db.engine.connect() as c:
        return int(c.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid::bigint = :k AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"), {"k": event_feed.FEED_LOCK}).scalar_one())  # fmt: skip


@pytest.mark.skipif(not PG_URL, reason="SQLite queues every writer at BEGIN; the lock scope is PostgreSQL's: set DEALROOM_TEST_DATABASE_URL")  # fmt: skip
def test_an_open_transaction_does_not_hold_up_the_feed(room: Room, db: Database, clock: TestClock) -> None:  # fmt: skip
    """The feed is numbered at commit: T1 has written an event but not committed; T2 on
    another deal commits without waiting, and T1 then takes the next position."""
    buyer = user(db, room.buyer)
    other = open_rfq(db, clock, room.seller, room.outsider)
    outsider = user(db, room.outsider)
    s1 = db.session(write=True)
    try:
        uow1 = UnitOfWork(session=s1, now=clock.now(), config=CONFIG)
        deals.post_message(uow1, buyer, deal_id=room.deal_id, body="T1")
        assert feed_lock_waiters(db) == 0
        outbox2 = in_tx(
            db, clock, lambda uow: deals.post_message(uow, outsider, deal_id=other, body="T2")
        )[1]
        uow1.commit()
    finally:
        s1.close()
    t1_seq, t2_seq = uow1.outbox[0].payload["feed_seq"], outbox2[0].payload["feed_seq"]
    assert t1_seq == t2_seq + 1
    with db.session(write=False) as s:
        rows = s.execute(
            select(m.Event.feed_seq, m.Event.payload["body"].as_string())
            .where(m.Event.feed_seq >= t2_seq)
            .order_by(m.Event.feed_seq)
        ).all()
    assert [tuple(r) for r in rows] == [(t2_seq, "T2"), (t1_seq, "T1")]


def test_long_replays_come_in_pages_without_a_gap_or_a_repeat(server: ThreadedServer, http: httpx.Client, room: Room, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(routes_stream, "READ_BATCH", 3)
    monkeypatch.setattr(realtime, "READ_BATCH", 3)
    deal_url, my_url = f"{server.url}/v1/deals/{room.deal_id}/stream", f"{server.url}/v1/me/stream"
    with (
        open_stream(http, deal_url, room.buyer.token) as a,
        open_stream(http, my_url, room.buyer.token) as b,
    ):
        deal_from, my_from = a.next().id, b.next().id
    prices = ["45.00", "48.00", "46.00", "47.50"]
    for i, price in enumerate(prices):  # counters both ways: events, and the buyer's bell
        counter(http, server, room.buyer if i % 2 == 0 else room.seller, room.deal_id, price)
        say(http, server, room.seller, room.deal_id, f"note {i}")
    with open_stream(http, deal_url, room.buyer.token, last_event_id=deal_from) as a:
        deal_replay = deal_events(a.until(lambda x: x.event == "ready"))
    with open_stream(http, my_url, room.buyer.token, last_event_id=my_from) as b:
        my_replay = b.until(lambda x: x.event == "ready")[:-1]
    assert [x.data["seq"] for x in deal_replay] == list(
        range(int(deal_from or 0) + 1, int(deal_from or 0) + 9)
    )
    assert [x.data["seq"] for x in deal_events(my_replay)] == [x.data["seq"] for x in deal_replay]
    notes = [x for x in my_replay if x.event == "notification"]
    bell_from = int((my_from or "0.0").split(".")[1])
    with db.session(write=False) as s:
        rung = s.scalars(
            select(m.Notification.id)
            .where(m.Notification.user_id == room.buyer.id, m.Notification.id > bell_from)
            .order_by(m.Notification.id)
        ).all()
    assert [x.data["id"] for x in notes] == rung
    assert [x.data["name"] for x in notes].count("counter-submitted") == 2
    ids = [tuple(int(p) for p in (x.id or "").split(".")) for x in my_replay]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(
    not PG_URL, reason="LISTEN/NOTIFY needs PostgreSQL: set DEALROOM_TEST_DATABASE_URL"
)
def test_the_listener_reconnects_and_the_streams_miss_nothing(server: ThreadedServer, http: httpx.Client, room: Room, db: Database) -> None:  # fmt: skip
    broker = server.app.state.broker
    with open_stream(
        http, f"{server.url}/v1/deals/{room.deal_id}/stream", room.seller.token
    ) as stream:
        stream.next()
        with db.engine.connect() as c:
            killed = c.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN dealroom' "
                "AND datname = current_database()")).scalars().all()  # fmt: skip
        assert killed == [True]
        say(http, server, room.buyer, room.deal_id, "while the listener was down")
        deadline = time.monotonic() + 10
        while not broker.listening.is_set():
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)
        say(http, server, room.buyer, room.deal_id, "after it came back")
        got = deal_events(
            stream.until(lambda x: x.data["payload"].get("body") == "after it came back")
        )
    assert [x.data["payload"]["body"] for x in got] == [
        "while the listener was down",
        "after it came back",
    ]


# --- the pieces ---------------------------------------------------------------------------


def test_notify_payloads_carry_big_events_by_reference_and_stay_under_the_limit() -> None:
    def event(feed_seq: int, body: str) -> OutboxItem:
        return OutboxItem("event", "d-1", {"deal_id": "d-1", "seq": feed_seq, "feed_seq": feed_seq,
                                           "payload": {"body": body}})  # fmt: skip

    items = [event(1, "€" * 5000), *(event(i, "x" * 1500) for i in range(2, 12)),
             OutboxItem("notification", "d-1", {"user_id": "u-1", "name": "counter-submitted"})]  # fmt: skip
    payloads = notify_payloads(items)
    assert len(payloads) > 1
    assert all(len(p.encode()) < NOTIFY_LIMIT for p in payloads)
    messages = [x for p in payloads for x in json.loads(p)]
    assert messages[0] == {"kind": "event", "feed_seq": 1, "deal_id": "d-1"}
    assert [x["event"]["feed_seq"] for x in messages[1:-1]] == list(range(2, 12))
    assert messages[-1] == {"kind": "notification", "user_id": "u-1"}


def test_a_stream_that_falls_too_far_behind_rereads_from_the_database(db: Database) -> None:
    hub = Hub(db, RealtimeSettings(max_queue=3))

    async def scenario() -> list[str]:
        sub = hub.subscribe(deal_id="d-1")
        hub.publish_events([{"deal_id": "d-1", "seq": i, "feed_seq": i} for i in range(1, 6)])
        await asyncio.sleep(0.05)
        kinds = []
        while (item := await sub.get(0.05)) is not None:
            kinds.append(item.kind)
        sub.close()
        return kinds

    assert asyncio.run(scenario()) == ["resync", "event"]  # 1-3 dropped at 4; then 5
    assert hub.stats.subscriptions == 0


def test_events_held_for_a_commit_that_never_comes_are_never_written(room: Room, db: Database, clock: TestClock) -> None:  # fmt: skip
    """A rolled-back (or closed) transaction leaves nothing held for the session's next one."""
    buyer = user(db, room.buyer)
    with db.session(write=False) as s:
        before = s.execute(select(func.count()).select_from(m.Event)).scalar_one()
        bell = s.execute(select(func.count()).select_from(m.Notification)).scalar_one()
    s1 = db.session(write=True)
    try:
        uow = UnitOfWork(session=s1, now=clock.now(), config=CONFIG)
        deals.post_message(uow, buyer, deal_id=room.deal_id, body="never sent")
        uow.rollback()
        uow.commit()  # the session's next transaction: nothing of the first is left in it
    finally:
        s1.close()
    with db.session(write=False) as s:
        assert s.execute(select(func.count()).select_from(m.Event)).scalar_one() == before
        assert s.execute(select(func.count()).select_from(m.Notification)).scalar_one() == bell
