"""The bell: listing notifications with the unread count, paging, marking read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from people import Person, add_user


def ring(db: Database, clock: TestClock, who: Person, count: int) -> list[int]:
    """`count` bell items for `who`, a minute apart, oldest first."""
    ids = []
    with session_scope(db) as s:
        for i in range(count):
            n = m.Notification(
                user_id=who.id,
                deal_id=None,
                name="counter-submitted",
                template="counter-submitted",
                payload={"deal_ref": f"DEAL-2026-{i:04d}", "state": "counter-pending"},
                created_at=clock.now() + timedelta(minutes=i),
            )
            s.add(n)
            s.flush()
            ids.append(n.id)
    return ids


@pytest.fixture
def buyer(db: Database, clock: TestClock) -> Person:
    return add_user(db, clock.now(), "buyer@acme.test")


@pytest.fixture
def seller(db: Database, clock: TestClock) -> Person:
    return add_user(db, clock.now(), "seller@parts.test")


def test_my_notifications_come_newest_first_with_the_unread_count(client: TestClient, db: Database, clock: TestClock, buyer: Person, seller: Person) -> None:  # fmt: skip
    ids = ring(db, clock, buyer, 3)
    ring(db, clock, seller, 2)
    r = client.get("/v1/me/notifications", headers=buyer.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [n["id"] for n in body["items"]] == ids[::-1]
    assert body["unread_count"] == 3
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["name"] == "counter-submitted"
    assert first["payload"]["deal_ref"] == "DEAL-2026-0002"
    assert (first["read_at"], first["seen_live_at"]) == (None, None)
    assert first["created_at"].startswith("2026-02-01T09:02:00")


def test_pages_follow_the_cursor_to_the_oldest(client: TestClient, db: Database, clock: TestClock, buyer: Person) -> None:  # fmt: skip
    ids = ring(db, clock, buyer, 5)
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/me/notifications", params=params, headers=buyer.headers).json()
        seen += [n["id"] for n in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    bad = client.get("/v1/me/notifications", params={"cursor": "yesterday"}, headers=buyer.headers)
    assert (bad.status_code, bad.json()["field"]) == (422, "cursor")


def test_a_bare_number_cursor_from_before_the_one_format_still_pages(client: TestClient, db: Database, clock: TestClock, buyer: Person) -> None:  # fmt: skip
    ids = ring(db, clock, buyer, 3)
    first = client.get("/v1/me/notifications", params={"limit": 1}, headers=buyer.headers).json()
    pages = [
        client.get("/v1/me/notifications", params={"limit": 1, "cursor": cursor},
                   headers=buyer.headers).json()
        for cursor in (first["next_cursor"], str(ids[-1]))
    ]  # fmt: skip
    assert pages[0] == pages[1]
    assert [n["id"] for n in pages[0]["items"]] == [ids[1]]


def test_marking_some_read_lowers_the_count_and_ignores_other_peoples_ids(client: TestClient, db: Database, clock: TestClock, buyer: Person, seller: Person) -> None:  # fmt: skip
    mine = ring(db, clock, buyer, 3)
    theirs = ring(db, clock, seller, 1)
    r = client.post("/v1/me/notifications/read", json={"ids": [mine[0], theirs[0], 999_999]}, headers=buyer.headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"unread_count": 2}
    body = client.get("/v1/me/notifications", headers=buyer.headers).json()
    read = {n["id"]: n["read_at"] for n in body["items"]}
    assert read[mine[0]] is not None
    assert read[mine[1]] is None
    unread = client.get(
        "/v1/me/notifications", params={"unread": "true"}, headers=buyer.headers
    ).json()
    assert [n["id"] for n in unread["items"]] == [mine[2], mine[1]]
    theirs_now = client.get("/v1/me/notifications", headers=seller.headers).json()
    assert theirs_now["unread_count"] == 1


def test_marking_all_read_leaves_nothing_unread_and_is_idempotent(client: TestClient, db: Database, clock: TestClock, buyer: Person) -> None:  # fmt: skip
    ring(db, clock, buyer, 4)
    for _ in range(2):
        r = client.post("/v1/me/notifications/read", json={"all": True}, headers=buyer.headers)
        assert r.json() == {"unread_count": 0}
    assert client.get("/v1/me/notifications", headers=buyer.headers).json()["unread_count"] == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": [1], "all": True}, {"all": False}, {"ids": ["one"]}, {"ids": [1], "extra": 1}],
)
def test_a_read_request_names_ids_or_all(client: TestClient, buyer: Person, body: dict[str, object]) -> None:  # fmt: skip
    r = client.post("/v1/me/notifications/read", json=body, headers=buyer.headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_the_bell_needs_a_signed_in_caller(client: TestClient) -> None:
    assert client.get("/v1/me/notifications").status_code == 401
    assert client.post("/v1/me/notifications/read", json={"all": True}).status_code == 401


def test_the_bell_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/me/notifications", "/v1/me/notifications/read", "/v1/me/stream",
            "/v1/deals/{deal_id}/stream"} <= set(paths)  # fmt: skip
    stream = paths["/v1/me/stream"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream
