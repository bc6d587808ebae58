"""GET/PUT /v1/me/preferences: immediate email, a daily digest at a local hour, or none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.security import issue_token
from dealroom.services.uow import session_scope
from inbox import queued_emails
from people import TEST_SECRET, Person, add_user
from servicedeals import make_parties, move, request_quote


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    return make_parties(db, clock)


def riyadh_user(db: Database, clock: TestClock) -> Person:
    person = add_user(db, clock.now(), "noura@parts.test", name="Noura")
    with session_scope(db) as s:
        s.execute(update(m.User).where(m.User.id == person.id).values(timezone="Asia/Riyadh"))
    return person


def test_defaults_are_immediate_email_at_8_in_the_users_own_timezone(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    noura = riyadh_user(db, clock)
    r = client.get("/v1/me/preferences", headers=noura.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "email": "immediate",
        "digest_hour": 8,
        "timezone": "Asia/Riyadh",
        "next_digest_at": None,
    }


def test_choosing_the_digest_schedules_it_at_the_local_hour(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    noura = riyadh_user(db, clock)  # T0 = 09:00 UTC = 12:00 in Riyadh (UTC+3)
    r = client.put("/v1/me/preferences", json={"email": "digest"}, headers=noura.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"email": "digest", "digest_hour": 8, "timezone": "Asia/Riyadh",
                        "next_digest_at": "2026-02-02T05:00:00.000000Z"}  # fmt: skip
    r = client.put("/v1/me/preferences", json={"digest_hour": 13}, headers=noura.headers)
    assert r.json()["next_digest_at"] == "2026-02-01T10:00:00.000000Z"  # still today, 13:00 local
    r = client.put(
        "/v1/me/preferences", json={"timezone": "America/New_York"}, headers=noura.headers
    )
    assert r.json() == {"email": "digest", "digest_hour": 13, "timezone": "America/New_York",
                        "next_digest_at": "2026-02-01T18:00:00.000000Z"}  # fmt: skip
    assert client.get("/v1/me/preferences", headers=noura.headers).json() == r.json()
    r = client.put("/v1/me/preferences", json={"email": "off"}, headers=noura.headers)
    assert r.json() == {
        "email": "off",
        "digest_hour": 13,
        "timezone": "America/New_York",
        "next_digest_at": None,
    }


def test_the_digest_hour_follows_daylight_saving_time(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    clock.set(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))  # Berlin moves to summer time on the 29th
    person = add_user(db, clock.now(), "lena@berlin.test")
    body = {"email": "digest", "digest_hour": 8, "timezone": "Europe/Berlin"}
    r = client.put("/v1/me/preferences", json=body, headers=person.headers)
    assert r.json()["next_digest_at"] == "2026-03-29T06:00:00.000000Z"  # 08:00 CEST, not 07:00


def test_bad_preferences_are_refused_with_every_field_named(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    noura = riyadh_user(db, clock)
    for body, field in (
        ({"email": "sometimes"}, "email"),
        ({"digest_hour": 24}, "digest_hour"),
        ({"digest_hour": -1}, "digest_hour"),
        ({"digest_hour": "8"}, "digest_hour"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"sms": True}, "sms"),
    ):
        r = client.put("/v1/me/preferences", json=body, headers=noura.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in r.text
    assert client.get("/v1/me/preferences", headers=noura.headers).json()["email"] == "immediate"


def test_preferences_need_a_signed_in_caller(client: TestClient) -> None:
    assert client.get("/v1/me/preferences").status_code == 401
    assert client.put("/v1/me/preferences", json={"email": "off"}).status_code == 401


def test_email_off_or_digest_queues_no_immediate_email(
    client: TestClient, db: Database, clock: TestClock, parties: tuple[m.User, m.User, str]
) -> None:
    buyer, seller, listing = parties
    for user, mode in ((seller, "off"), (buyer, "digest")):
        r = client.put("/v1/me/preferences", json={"email": mode}, headers=headers_of(user, clock))
        assert r.status_code == 200, r.text
    deal_id = request_quote(db, clock, buyer, listing)  # tells the seller: off
    move(
        db, clock, seller, deal_id, "send-quote", terms={"unit_price": "50.00"}
    )  # the buyer: digest
    assert queued_emails(db) == []
    with db.session(write=False) as s:
        assert len(s.scalars(select(m.Notification)).all()) == 2  # the bell still rings


def headers_of(user: m.User, clock: TestClock) -> dict[str, str]:
    token, _ = issue_token(TEST_SECRET, user.id, now=clock.now(), ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}
