"""GET /v1/events: the global feed, in feed order, showing each caller what it may see."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from dealroom.clock import TestClock
from dealroom.db.session import Database
from factories import T0
from people import Person, add_user, make_listing, move, offer


def opened(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json())


def feed(client: TestClient, who: Person, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/events", params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def scene(client: TestClient, db: Database, clock: TestClock) -> dict[str, Any]:
    """Two buyers negotiate with one seller; the moves interleave in time."""
    nora = add_user(db, T0, "nora@parts.example")
    amal = add_user(db, T0, "amal@acme.example")
    omar = add_user(db, T0, "omar@globex.example")
    ops = add_user(db, T0, "ops@dealroom.example", roles=("operator",))
    listing = make_listing(client, nora)
    d1 = opened(offer(client, amal, listing["id"]))
    clock.advance(minutes=5)
    d2 = opened(offer(client, omar, listing["id"]))
    clock.advance(minutes=5)
    move(client, nora, d1, "accept")
    client.post(f"/v1/deals/{d2['id']}/messages", json={"body": "Can you ship by May?"},
                headers=nora.headers)  # fmt: skip
    return {"nora": nora, "amal": amal, "omar": omar, "ops": ops, "d1": d1, "d2": d2}


def test_operators_see_every_event_in_feed_order(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    s = scene(client, db, clock)
    page = feed(client, s["ops"])
    items = page["items"]
    assert [e["feed_seq"] for e in items] == list(range(1, len(items) + 1))
    assert [(e["deal_id"], e["seq"]) for e in items] == [
        (s["d1"]["id"], 1),
        (s["d2"]["id"], 1),
        (s["d1"]["id"], 2),
        (s["d2"]["id"], 2),
    ]
    assert [e["type"] for e in items][-1] == "MESSAGE_POSTED"
    assert page["next_after"] == items[-1]["feed_seq"]
    first = items[0]
    assert set(first) == {
        "seq", "feed_seq", "type", "deal_id", "actor_id", "actor_type", "from_state",
        "to_state", "payload", "created_at", "prev_hash", "hash",
    }  # fmt: skip
    assert first["payload"]["terms"]["unit_price"] == "45.00"


def test_a_party_sees_only_its_own_deals(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    s = scene(client, db, clock)
    amal = feed(client, s["amal"])["items"]
    assert {e["deal_id"] for e in amal} == {s["d1"]["id"]}
    assert [e["seq"] for e in amal] == [1, 2]
    omar = feed(client, s["omar"])["items"]
    assert {e["deal_id"] for e in omar} == {s["d2"]["id"]}
    nora = feed(client, s["nora"])["items"]
    assert len(nora) == 4
    outsider = add_user(db, T0, "nosy@example.example")
    empty = feed(client, outsider, after=0)
    assert empty == {"items": [], "next_after": 0}


def test_polling_after_the_last_position_returns_only_what_is_new(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    s = scene(client, db, clock)
    first = feed(client, s["ops"], limit=3)
    assert len(first["items"]) == 3
    rest = feed(client, s["ops"], after=first["next_after"])
    assert [e["feed_seq"] for e in rest["items"]] == [4]
    idle = feed(client, s["ops"], after=rest["next_after"])
    assert idle == {"items": [], "next_after": rest["next_after"]}
    clock.advance(minutes=1)
    move(client, s["nora"], s["d2"], "reject")  # a message does not move the version
    new = feed(client, s["omar"], after=rest["next_after"])["items"]
    assert [(e["deal_id"], e["to_state"], e["feed_seq"]) for e in new] == [
        (s["d2"]["id"], "rejected", 5)
    ]


def test_feed_needs_a_signed_in_caller_and_sane_parameters(
    client: TestClient, db: Database
) -> None:
    assert client.get("/v1/events").status_code == 401
    person = add_user(db, T0, "amal@acme.example")
    for params in ({"after": -1}, {"limit": 0}, {"limit": 501}, {"after": "x"}):
        r = client.get("/v1/events", params=params, headers=person.headers)
        assert r.status_code == 422, params


def test_a_move_with_several_events_numbers_them_one_after_another(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    """Closing writes four events in one statement, each numbered after the feed's head as
    that statement sees it (feed.number_feed): no gap, no repeat, in per-deal order."""
    s = scene(client, db, clock)
    d1 = feed(client, s["amal"])["items"]
    deal = client.get(f"/v1/deals/{s['d1']['id']}", headers=s["nora"].headers).json()
    r = client.post(
        f"/v1/deals/{deal['id']}/transitions",
        json={"name": "request-close", "expected_version": deal["version"],
              "data": {"escrow_waived": False}},
        headers=s["nora"].headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    closed = move(client, s["amal"], r.json(), "confirm-close")
    assert closed["handoff"]["order_ref"].startswith("ORD-")
    items = feed(client, s["ops"])["items"]
    assert [e["feed_seq"] for e in items] == list(range(1, len(items) + 1))
    last_move = [e for e in items if e["deal_id"] == deal["id"]][len(d1) + 1 :]
    assert len(last_move) >= 3
    assert [e["seq"] for e in last_move] == list(range(len(d1) + 2, len(d1) + 2 + len(last_move)))
    assert last_move[0]["type"] == "DEAL_CLOSED"
