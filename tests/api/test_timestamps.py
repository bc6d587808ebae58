"""Every timestamp the API writes has one form: ISO-8601 UTC with microseconds and a `Z`.

A deal is walked through a live server, and every answer on the way is searched for
timestamps: the deal, its quotes, events, messages and audit exports, the feed, the bell,
the live streams, users, tokens, listings, preferences, webhooks and a delivered webhook
body. The clock stands on a whole second for some of it, the case that catches a writer
dropping `.000000`, and on fractions for the rest; `+00:00` is caught wherever it hides.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from test_webhooks import Receiver

from dealroom.clock import TestClock
from dealroom.db.models import Event
from dealroom.db.session import Database
from dealroom.services.audit import chain
from dealroom.worker import run_once
from dealroom_harness.servers import ThreadedServer
from inbox import mail_config
from people import OFFER_FIELDS, OFFER_MESSAGE, PASSWORD, Person, add_user
from sse import open_stream

#: The one form, spelled out here rather than taken from the code under test.
UTC_MICROS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
#: Anything that starts like a date and a time is a timestamp, whatever its key.
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: Keys whose values are timestamps (or null), whatever their value looks like.
TIME_KEYS = re.compile(r".*(_at|_until)|at|respond_by")


def timestamps(value: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every timestamp in a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}"
            if TIME_KEYS.fullmatch(key) and inner is not None and not isinstance(inner, dict):
                yield where, key, inner
            else:
                yield from timestamps(inner, where)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from timestamps(inner, f"{path}[{i}]")
    elif isinstance(value, str) and LOOKS_LIKE_TIME.match(value):
        yield path, path.rsplit(".", 1)[-1], value


class Walk:
    """A client of the live server that keeps every answer it gets."""

    def __init__(self, http: httpx.Client, server: ThreadedServer) -> None:
        self.http = http
        self.url = server.url
        self.answers: list[tuple[str, Any]] = []

    def keep(self, label: str, body: Any) -> Any:
        self.answers.append((label, body))
        return body

    def call(self, method: str, path: str, who: Person | None = None, **kw: Any) -> Any:
        headers = who.headers if who is not None else {}
        r = self.http.request(method, self.url + path, headers=headers, **kw)
        assert r.is_success, f"{method} {path}: {r.status_code} {r.text}"
        return self.keep(f"{method} {path}", r.json())

    def move(self, who: Person, deal: dict[str, Any], name: str, **body: Any) -> Any:
        return self.call(
            "POST",
            f"/v1/deals/{deal['id']}/transitions",
            who,
            json={"name": name, "expected_version": deal["version"], **body},
        )


def seen_live(walk: Walk, who: Person) -> Any:
    """The bell, once the stream has stamped the item it pushed (right after the push)."""
    deadline = time.monotonic() + 5
    while True:
        bell = walk.call("GET", "/v1/me/notifications", who)
        if bell["items"][0]["seen_live_at"] is not None or time.monotonic() > deadline:
            return bell
        time.sleep(0.05)


@pytest.fixture
def receiver(clock: TestClock) -> Iterator[Receiver]:
    r = Receiver(clock)
    yield r
    r.close()


def test_every_timestamp_in_every_answer_is_utc_with_microseconds_and_a_z(
    server: ThreadedServer, http: httpx.Client, db: Database, clock: TestClock, receiver: Receiver
) -> None:
    buyer = add_user(db, clock.now(), "buyer@acme.test", organization="Acme Corp")
    seller = add_user(db, clock.now(), "seller@parts.test", organization="Parts Inc")
    admin = add_user(db, clock.now(), "ops@market.test", roles=("admin",))
    walk = Walk(http, server)

    walk.call("POST", "/v1/auth/token", json={"email": buyer.email, "password": PASSWORD})
    walk.call("GET", "/v1/me", buyer)
    walk.call("GET", f"/v1/users/{seller.id}", buyer)
    hook = walk.call("POST", "/v1/webhooks", admin, json={"url": receiver.url, "events": ["*"]})
    receiver.secret = hook["secret"]
    walk.call("GET", "/v1/webhooks", admin)
    walk.call("PUT", "/v1/me/preferences", seller, json={"email": "digest"})

    listing = walk.call(
        "POST",
        "/v1/listings",
        seller,
        json={"title": "Refurbished servers", "currency": "SAR", "unit_price": "45000.00",
              "quantity": 1, "process": "offer"},
    )  # fmt: skip
    clock.advance(seconds=0.25)
    walk.call("PATCH", f"/v1/listings/{listing['id']}", seller, json={"quantity": 2})
    walk.call("GET", "/v1/listings", buyer)
    walk.call("GET", f"/v1/listings/{listing['id']}", buyer)

    clock.advance(minutes=5)  # a whole second again: the deal opens at 09:05:00.250000
    deal = walk.call(
        "POST",
        "/v1/deals",
        buyer,
        json={"listing_id": listing["id"], "transition": "submit-offer", "data": OFFER_FIELDS,
              "message": OFFER_MESSAGE, "terms": {"unit_price": "40000.00", "quantity": 1,
              "valid_until": "2026-02-05T12:00:00+03:00"}},
    )  # fmt: skip
    clock.advance(seconds=61.5)
    deal = walk.move(seller, deal, "request-info", message="Which models exactly?")
    walk.call("POST", f"/v1/deals/{deal['id']}/messages", buyer, json={"body": "Dell R740s."})
    clock.advance(seconds=3599.123456)
    deal = walk.move(
        seller,
        deal,
        "counter",
        terms={"unit_price": "43000.00"},
        message="Two units at this price.",
    )
    clock.advance(hours=1)
    with open_stream(http, f"{server.url}/v1/me/stream", seller.token) as stream:
        stream.next()  # ready: the stream is live
        deal = walk.move(buyer, deal, "accept")
        stream.until(lambda m: m.event == "notification")
    assert deal["state"] == "accepted"
    assert deal["closed_at"] is not None

    base = f"/v1/deals/{deal['id']}"
    for path in ("", "/quotes", "/quotes/diff?from=1&to=2", "/messages", "/events"):
        walk.call("GET", base + path, seller)
    walk.call("GET", "/v1/deals", buyer)
    walk.call("GET", "/v1/events", buyer)
    bell = seen_live(walk, seller)
    walk.call("POST", "/v1/me/notifications/read", seller, json={"ids": [bell["items"][0]["id"]]})
    walk.call("GET", "/v1/me/notifications", seller)
    walk.call("GET", "/v1/me/preferences", seller)

    exported = http.get(f"{server.url}{base}/audit/export", headers=seller.headers)
    walk.keep("audit export, JSON", exported.json())
    rows = list(csv.DictReader(io.StringIO(http.get(
        f"{server.url}{base}/audit/export?format=csv", headers=seller.headers).text)))  # fmt: skip
    walk.keep("audit export, CSV", [{**row, "payload": json.loads(row["payload"])} for row in rows])

    with open_stream(http, f"{server.url}{base}/stream", seller.token, last_event_id="0") as s:
        walk.keep("deal stream", [m.data for m in s.until(lambda m: m.event == "ready")])
    with open_stream(http, f"{server.url}/v1/me/stream", seller.token, last_event_id="0.0") as s:
        walk.keep("my stream", [m.data for m in s.until(lambda m: m.event == "ready")])

    # A quote about to lapse: the worker's reminder tells the bell when.
    pumps = walk.call("POST", "/v1/listings", seller, json={
        "title": "Pumps", "currency": "SAR", "unit_price": "50.00", "quantity": 10})  # fmt: skip
    walk.call("POST", "/v1/deals", buyer, json={
        "listing_id": pumps["id"], "transition": "make-offer",
        "terms": {"unit_price": "45.00", "quantity": 10, "valid_until": "2026-02-02T12:00:00Z"},
    })  # fmt: skip
    clock.set(datetime(2026, 2, 1, 12, 0, 0, 500000, tzinfo=UTC))  # 24 h before it lapses
    passed = run_once(db, mail_config(), clock.now())
    assert passed.fired == 1
    reminder = walk.call("GET", "/v1/me/notifications", seller)["items"][0]
    assert reminder["payload"]["due_at"] == "2026-02-01T12:00:00.000000Z"

    feed = walk.call("GET", "/v1/events", admin)["items"]
    assert passed.webhooks_delivered == len(feed)
    walk.keep("webhook bodies", [a["body"] for a in receiver.delivered()])
    walk.call("GET", f"/v1/webhooks/{hook['id']}/deliveries", admin)

    found = [(label, *stamp) for label, body in walk.answers for stamp in timestamps(body)]
    wrong = [f"{label}: {path} = {value!r}" for label, path, _, value in found
             if not (isinstance(value, str) and UTC_MICROS_Z.fullmatch(value))]  # fmt: skip
    assert wrong == []
    silent = {label for label, _ in walk.answers} - {label for label, *_ in found}
    assert silent == {"POST /v1/me/notifications/read"}  # it answers a count
    assert {key for *_, key, _ in found} >= {
        "created_at", "updated_at", "closed_at", "valid_until", "due_at", "respond_by",
        "expires_at", "read_at", "seen_live_at", "next_digest_at", "delivered_at", "at",
        "old_value", "new_value",
    }  # fmt: skip
    fractions = {str(v)[-7:-1] for *_, v in found}
    assert "000000" in fractions  # a whole second, written with its six zeros
    assert "873456" in fractions  # the counter-offer, 09:05:00.25 + 61.5 s + 3599.123456 s


def test_the_openapi_document_shows_the_timestamp_form(
    server: ThreadedServer, http: httpx.Client
) -> None:
    doc = http.get(f"{server.url}/openapi.json").json()
    created = doc["components"]["schemas"]["DealRead"]["properties"]["created_at"]
    assert created["format"] == "date-time"
    assert re.fullmatch(created["pattern"], "2026-02-01T09:00:00.000000Z")
    assert not re.fullmatch(created["pattern"], "2026-02-01T09:00:00Z")
    assert not re.fullmatch(created["pattern"], "2026-02-01T09:00:00.000000+00:00")
    assert UTC_MICROS_Z.fullmatch(created["examples"][0])


@pytest.mark.parametrize(
    ("created_at", "written", "digest"),
    [
        (datetime(2026, 2, 1, 9, 0, tzinfo=UTC), "2026-02-01T09:00:00.000000Z",
         "f83d2abd6844add65047867d14688eab7aab249d4ecdb524bf04cca22e605d02"),
        (datetime(2026, 2, 1, 12, 0, 1, 123456, tzinfo=timezone(timedelta(hours=3))),
         "2026-02-01T09:00:01.123456Z",
         "10e248b5a05c675730dab63e6213d25f51871c47cc5afe9aa919069c080c9ed6"),
    ],
)  # fmt: skip
def test_an_event_hashes_as_every_stored_chain_was_hashed(
    created_at: datetime, written: str, digest: str
) -> None:
    """The digests were taken with the audit module as it was before the one timestamp
    writer: a change of form would break every stored chain, and this test first."""
    event = Event(deal_id="d-1", seq=1, type="OFFER_MADE", actor_id="u-1", actor_type="buyer",
                  from_state=None, to_state="offer-pending", ip=None, user_agent=None,
                  payload={"terms": {"unit_price": "45.00"}}, created_at=created_at)  # fmt: skip
    assert chain.hashed_fields(event)["created_at"] == written
    assert chain.event_hash(chain.GENESIS, event) == digest
