"""Webhooks: signed deliveries of committed events, verified by a receiver written from
docs/webhooks.md alone; retries with backoff; the delivery log; no duplicates."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.security import issue_token
from dealroom.worker import run_once
from inbox import mail_config
from people import TEST_SECRET, Person, add_user
from races import side_by_side
from servicedeals import make_parties, negotiate, request_quote


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    return make_parties(db, clock)


# --- a receiver, from docs/webhooks.md ------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def docs_example() -> Callable[..., bool]:
    """The verification example of docs/webhooks.md, run exactly as written there: the
    receiver below knows nothing of dealroom's code."""
    code = DOCS.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


verify = docs_example()


def test_the_docs_example_accepts_the_docs_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTFoZTSr2fQyLYY3sqvmz"
    body = b'{"seq":1,"type":"RFQ_CREATED"}'
    header = "t=1769936400,v1=f9be600aa2cd1f1d981a33fed6b6b6f41098c2aee43ac85218183c691ad5d035"
    assert verify(secret, header, body, now=1769936400)
    assert not verify(secret, header, body + b" ", now=1769936400)
    assert not verify(secret, header, body, now=1769936400 + 301)
    assert not verify(secret, "v1=abc", body, now=1769936400)


class Receiver:
    """A tiny endpoint on 127.0.0.1: verifies each request, records it, answers with the
    next planned status (200 once the plan runs out)."""

    def __init__(self, clock: TestClock) -> None:
        self.clock = clock
        self.secret = ""
        self.plan: list[int] = []
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(receiver.secret, self.headers.get("Dealroom-Signature", ""), raw,
                            now=receiver.clock.now().timestamp())  # fmt: skip
                with receiver._lock:
                    if not ok:
                        receiver.rejected += 1
                        status = 400
                    else:
                        status = receiver.plan.pop(0) if receiver.plan else 200
                        receiver.accepted.append({
                            "event": self.headers["Dealroom-Event"],
                            "delivery": self.headers["Dealroom-Delivery"],
                            "body": json.loads(raw), "status": status,
                        })  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/dealroom"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a for a in self.accepted if 200 <= a["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver(clock: TestClock) -> Iterator[Receiver]:
    r = Receiver(clock)
    yield r
    r.close()


@pytest.fixture
def admin(db: Database, clock: TestClock) -> Person:
    return add_user(db, clock.now(), "ops@market.test", roles=("admin",))


def register(client: TestClient, admin: Person, url: str, events: list[str]) -> dict[str, Any]:
    r = client.post("/v1/webhooks", json={"url": url, "events": events}, headers=admin.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def deliveries(
    client: TestClient, admin: Person, hook_id: str, **params: Any
) -> list[dict[str, Any]]:
    r = client.get(f"/v1/webhooks/{hook_id}/deliveries", params=params, headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# --- managing endpoints -------------------------------------------------------------------


def test_only_admins_and_operators_manage_webhooks(
    client: TestClient, db: Database, clock: TestClock, admin: Person
) -> None:
    user = add_user(db, clock.now(), "someone@acme.test")
    body = {"url": "https://erp.example.com/hook", "events": ["*"]}
    assert client.post("/v1/webhooks", json=body, headers=user.headers).status_code == 403
    assert client.get("/v1/webhooks", headers=user.headers).status_code == 403
    assert client.post("/v1/webhooks", json=body).status_code == 401
    operator = add_user(db, clock.now(), "op@market.test", roles=("operator",))
    assert client.post("/v1/webhooks", json=body, headers=operator.headers).status_code == 201


def test_bad_endpoints_and_filters_are_refused(client: TestClient, admin: Person) -> None:
    for body, field in (
        ({"url": "ftp://files.example.com/x", "events": ["*"]}, "url"),
        ({"url": "javascript:alert(1)", "events": ["*"]}, "url"),
        ({"url": "not a url at all", "events": ["*"]}, "url"),
        ({"url": "https://erp.example.com/hook", "events": []}, "events"),
        ({"url": "https://erp.example.com/hook", "events": ["counter_submitted"]}, "events"),
        ({"url": "https://erp.example.com/hook", "events": ["*"], "secret": "mine"}, "secret"),
    ):
        r = client.post("/v1/webhooks", json=body, headers=admin.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text


def test_the_secret_is_shown_once_and_a_deleted_endpoint_is_gone(
    client: TestClient, admin: Person
) -> None:
    hook = register(
        client,
        admin,
        "https://erp.example.com/hook",
        ["COUNTER_SUBMITTED", "COUNTER_SUBMITTED", "*"],
    )
    assert hook["secret"].startswith("whsec_")
    assert len(hook["secret"]) > 40
    assert hook["events"] == ["COUNTER_SUBMITTED", "*"]
    listed = client.get("/v1/webhooks", headers=admin.headers).json()["items"]
    assert listed == [{k: hook[k] for k in ("id", "url", "events", "created_at")}]
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin.headers).status_code == 204
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin.headers).status_code == 204
    assert client.get("/v1/webhooks", headers=admin.headers).json()["items"] == []
    assert (
        client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin.headers).status_code
        == 404
    )
    assert client.delete("/v1/webhooks/no-such-hook", headers=admin.headers).status_code == 404


# --- deliveries ---------------------------------------------------------------------------


def test_a_receiver_written_from_the_docs_verifies_every_delivery(
    client: TestClient, db: Database, clock: TestClock, admin: Person,
    parties: tuple[m.User, m.User, str], receiver: Receiver,
) -> None:  # fmt: skip
    buyer, seller, listing = parties
    request_quote(db, clock, buyer, listing)  # before the endpoint exists: not delivered
    hook = register(client, admin, receiver.url, ["COUNTER_SUBMITTED", "QUOTE_SENT"])
    receiver.secret = hook["secret"]
    deal_id = negotiate(db, clock, buyer, seller, listing)

    result = run_once(db, mail_config(), clock.now())

    assert result.webhooks_delivered == 2
    assert receiver.rejected == 0
    got = receiver.delivered()
    assert [g["event"] for g in got] == ["QUOTE_SENT", "COUNTER_SUBMITTED"]
    counter = got[1]["body"]
    assert counter["type"] == "COUNTER_SUBMITTED"
    assert counter["deal_id"] == deal_id
    assert counter["payload"]["terms"]["unit_price"] == "45.00"
    assert counter["payload"]["message"] == "Volume discount"
    # The same payload as the pull feed.
    feed = client.get(
        "/v1/events", params={"after": counter["feed_seq"] - 1, "limit": 1}, headers=admin.headers
    ).json()
    assert feed["items"][0] == counter
    log = deliveries(client, admin, hook["id"])
    assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("COUNTER_SUBMITTED", "delivered", 1, 200), ("QUOTE_SENT", "delivered", 1, 200),
    ]  # fmt: skip
    assert {d["id"] for d in log} == {g["delivery"] for g in got}
    assert run_once(db, mail_config(), clock.now() + timedelta(hours=1)).webhooks_delivered == 0


def test_the_docs_receiver_rejects_a_forged_or_stale_signature(
    receiver: Receiver, clock: TestClock
) -> None:
    receiver.secret = "whsec_the-real-one"
    body = b'{"type":"QUOTE_ACCEPTED"}'
    now = int(clock.now().timestamp())

    def post(secret: str, t: int) -> int:
        mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"Dealroom-Signature": f"t={t},v1={mac}", "Dealroom-Event": "QUOTE_ACCEPTED",
                   "Dealroom-Delivery": "x", "Content-Type": "application/json"}  # fmt: skip
        return httpx.post(receiver.url, content=body, headers=headers, timeout=5).status_code

    assert post("whsec_the-real-one", now) == 200
    assert post("whsec_a-guess", now) == 400
    assert post("whsec_the-real-one", now - 301) == 400  # a replay from six minutes ago
    assert receiver.rejected == 2


def test_a_failing_endpoint_is_retried_with_backoff_and_the_log_shows_each_attempt(
    client: TestClient, db: Database, clock: TestClock, admin: Person,
    parties: tuple[m.User, m.User, str], receiver: Receiver,
) -> None:  # fmt: skip
    buyer, _seller, listing = parties
    hook = register(client, admin, receiver.url, ["RFQ_CREATED"])
    receiver.secret = hook["secret"]
    receiver.plan = [500, 503]
    request_quote(db, clock, buyer, listing)
    t0 = clock.now()
    config = mail_config()

    assert run_once(db, config, t0).webhooks_retrying == 1
    [d] = deliveries(client, admin, hook["id"])
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    assert d["next_attempt_at"] == "2026-02-01T09:00:30.000000Z"

    clock.set(t0 + timedelta(seconds=29))
    assert run_once(db, config, clock.now()).webhooks_retrying == 0  # not yet
    clock.set(t0 + timedelta(seconds=30))
    assert run_once(db, config, clock.now()).webhooks_retrying == 1  # 503, next in 60 s
    [d] = deliveries(client, admin, hook["id"])
    assert d["next_attempt_at"] == "2026-02-01T09:01:30.000000Z"
    clock.set(t0 + timedelta(seconds=90))
    assert run_once(db, config, clock.now()).webhooks_delivered == 1

    [d] = deliveries(client, admin, hook["id"])
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
        "delivered",
        3,
        200,
        None,
    )
    assert d["next_attempt_at"] is None
    assert d["delivered_at"] == "2026-02-01T09:01:30.000000Z"
    assert [(a["attempt"], a["status_code"], a["at"][:19]) for a in d["history"]] == [
        (1, 500, "2026-02-01T09:00:00"), (2, 503, "2026-02-01T09:00:30"), (3, 200, "2026-02-01T09:01:30"),
    ]  # fmt: skip
    assert len({a["delivery"] for a in receiver.accepted}) == 1  # one delivery id on every retry
    assert len(receiver.delivered()) == 1
    assert deliveries(client, admin, hook["id"], status="failed") == []


def test_an_endpoint_that_never_answers_fails_after_a_day(
    client: TestClient, db: Database, clock: TestClock, admin: Person,
    parties: tuple[m.User, m.User, str], receiver: Receiver,
) -> None:  # fmt: skip
    buyer, _seller, listing = parties
    url = receiver.url
    receiver.close()  # nothing listens there any more: connection refused
    hook = register(client, admin, url, ["*"])
    request_quote(db, clock, buyer, listing)
    t0 = clock.now()
    for _ in range(40):
        run_once(db, mail_config(), clock.now())
        with db.session(write=False) as s:
            row = s.scalars(select(m.WebhookDelivery)).one()
        if row.status != "pending":
            break
        clock.set(min(t0 + timedelta(days=2), row.next_attempt_at))
    admin = signed_in_again(admin, clock)  # a day later the first token has expired
    [d] = deliveries(client, admin, hook["id"])
    assert d["status"] == "failed"
    assert d["history"][-1]["at"].startswith("2026-02-02T09:00:00")  # the last try at +24 h
    assert d["last_status_code"] is None
    assert "ConnectError" in d["last_error"]
    gaps = [b - a for a, b in zip(
        [parse(h["at"]) for h in d["history"]], [parse(h["at"]) for h in d["history"][1:]], strict=False
    )]  # fmt: skip
    assert gaps[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(gaps) <= timedelta(hours=3)
    assert deliveries(client, admin, hook["id"], status="failed")[0]["id"] == d["id"]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def signed_in_again(person: Person, clock: TestClock) -> Person:
    token, _ = issue_token(TEST_SECRET, person.id, now=clock.now(), ttl_seconds=3600)
    return Person(person.id, person.email, token)


def test_deleting_an_endpoint_cancels_its_pending_retries(
    client: TestClient, db: Database, clock: TestClock, admin: Person,
    parties: tuple[m.User, m.User, str], receiver: Receiver,
) -> None:  # fmt: skip
    buyer, _seller, listing = parties
    hook = register(client, admin, receiver.url, ["*"])
    receiver.secret = hook["secret"]
    receiver.plan = [500]
    request_quote(db, clock, buyer, listing)
    run_once(db, mail_config(), clock.now())
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin.headers).status_code == 204
    assert run_once(db, mail_config(), clock.now() + timedelta(hours=1)).webhooks_delivered == 0
    with db.session(write=False) as s:
        assert s.scalars(select(m.WebhookDelivery.status)).all() == ["cancelled"]


def test_two_workers_deliver_each_event_once(
    client: TestClient, db: Database, clock: TestClock, admin: Person,
    parties: tuple[m.User, m.User, str], receiver: Receiver,
) -> None:  # fmt: skip
    buyer, _seller, listing = parties
    hook = register(client, admin, receiver.url, ["*"])
    receiver.secret = hook["secret"]
    count = 20
    for _ in range(count):
        request_quote(db, clock, buyer, listing)
    delivered = side_by_side(lambda: run_once(db, mail_config(), clock.now()).webhooks_delivered)
    assert sum(delivered) == count
    got = receiver.delivered()
    assert len(got) == count
    assert len({g["body"]["feed_seq"] for g in got}) == count
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.WebhookDelivery)) == count
