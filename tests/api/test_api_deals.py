"""POST/GET /v1/deals and GET /v1/deals/{id}, and the deal's messages, over HTTP: opening a
deal in every process, dry runs, Idempotency-Key, refusals of bad input, and the list with
its filters, cursor pagination and a fixed number of queries per page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from dealroom.api.schemas import DealListItem, DealRead, MessageRead
from dealroom.clock import TestClock
from dealroom.db.session import Database
from people import (
    OFFER_FIELDS,
    OFFER_MESSAGE,
    Person,
    make_listing,
    open_deal,
    refusal_of,
    table_counts,
)


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return dict(body)


# --- opening deals in every process -------------------------------------------------------


def test_buyer_requests_a_quote_and_gets_an_rfq_deal(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    deal = open_deal(
        client,
        people["buyer"],
        listing,
        process="rfq",
        transition="request-quote",
        terms={"quantity": 800},
        message="Need for Q2 production",
    )
    DealRead.model_validate(deal)
    assert re.fullmatch(r"DEAL-2026-\d{4}", deal["ref"])
    assert deal["process"] == {"name": "rfq", "version": 1}
    assert deal["state"] == "quote-requested"
    assert deal["version"] == 1
    assert deal["viewer_role"] == "buyer"
    assert deal["buyer"]["id"] == people["buyer"].id
    assert deal["seller"]["id"] == people["seller"].id
    assert deal["listing_snapshot"]["title"] == listing["title"]
    assert deal["current_quote"] is None  # the request is not a quote version
    assert deal["next_step"]["actor"] == "seller"
    assert deal["deadlines"]["respond_by"].startswith("2026-02-03T09:00")  # NEG-T01: 48 h
    seller_view = client.get(f"/v1/deals/{deal['id']}", headers=people["seller"].headers).json()
    assert seller_view["viewer_role"] == "seller"
    assert "send-quote" in seller_view["available_transitions"]


def test_make_offer_opens_a_market_deal_by_default(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    deal = open_deal(
        client,
        people["buyer"],
        listing,
        transition="make-offer",
        terms={"unit_price": "45.00", "quantity": 500},
        message="Can collect next week",
    )
    assert deal["process"]["name"] == "market"
    assert deal["state"] == "offer-pending"
    q = deal["current_quote"]
    assert (q["version"], q["created_by_role"], q["unit_price"], q["quantity"]) == (
        1,
        "buyer",
        "45.00",
        500,
    )
    assert q["total_price"] == "22500.00"
    assert deal["available_transitions"] == ["withdraw"]


def test_quantity_only_takes_the_unit_price_from_the_listing(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], unit_price="12.50")
    deal = open_deal(
        client, people["buyer"], listing, transition="make-offer", terms={"quantity": 4}
    )
    assert deal["current_quote"]["unit_price"] == "12.50"
    assert deal["current_quote"]["total_price"] == "50.00"


def test_buy_now_closes_at_once_with_order_escrow_and_shipment(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], sale_mode="buy_now", unit_price="50.00")
    deal = open_deal(client, people["buyer"], listing, transition="buy-now", terms={"quantity": 10})
    assert deal["state"] == "closed-won"
    assert deal["closed_at"] is not None
    handoff = deal["handoff"]
    assert re.fullmatch(r"ORD-2026-\d{4}", handoff["order_ref"])
    assert handoff["total"] == "500.00"
    assert handoff["escrow"]["status"] == "open"
    assert handoff["shipment"]["status"] == "awaiting_pickup"
    assert deal["next_step"] == {"action": "fund-escrow", "actor": "buyer", "due_at": None}
    quotes = client.get(f"/v1/deals/{deal['id']}/quotes", headers=people["buyer"].headers)
    assert [q["status"] for q in quotes.json()["items"]] == ["accepted"]
    assert deal["accepted_quote"]["version"] == 1


def test_buy_now_is_refused_on_a_negotiable_listing(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "buy-now"},
        headers=people["buyer"].headers,
    )
    problem(r, 409, "NEG-007")


def test_operator_records_an_auction_win_for_the_buyer(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], sale_mode="auction")
    body = {
        "listing_id": listing["id"],
        "transition": "win-auction",
        "terms": {"unit_price": "61.00", "quantity": 100},
        "data": {"buyer_id": people["buyer"].id},
    }
    r = client.post("/v1/deals", json=body, headers=people["buyer"].headers)
    problem(r, 403, "NEG-008")
    r = client.post("/v1/deals", json=body, headers=people["operator"].headers)
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["state"] == "closed-won"
    assert deal["buyer"]["id"] == people["buyer"].id
    assert deal["viewer_role"] == "operator"
    assert deal["handoff"]["total"] == "6100.00"
    r = client.post(
        "/v1/deals",
        json={**body, "data": {"buyer_id": 42}},
        headers=people["operator"].headers,
    )
    assert problem(r, 422, "NEG-016")["field"] == "data.buyer_id"


def test_offer_process_needs_the_offer_details(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(
        client, people["seller"], process="offer", unit_price="45000.00", quantity=1
    )
    body = {
        "listing_id": listing["id"],
        "transition": "submit-offer",
        "terms": {"unit_price": "40000.00", "quantity": 1},
        "message": OFFER_MESSAGE,
    }
    r = client.post("/v1/deals", json=body, headers=people["buyer"].headers)
    refused = problem(r, 422, "NEG-003")
    assert {e["field"] for e in refused["errors"]} == set(OFFER_FIELDS)
    r = client.post(
        "/v1/deals", json={**body, "data": OFFER_FIELDS}, headers=people["buyer"].headers
    )
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["process"]["name"] == "offer"
    assert deal["state"] == "offer-pending"
    # OFR-010: one open offer per listing.
    r = client.post(
        "/v1/deals", json={**body, "data": OFFER_FIELDS}, headers=people["buyer"].headers
    )
    assert problem(r, 409, "NEG-014")["deal_id"] == deal["id"]


def test_seller_makes_an_offer_on_a_buy_listing_in_the_negotiation_process(
    client: TestClient, people: dict[str, Person]
) -> None:
    wanted = make_listing(
        client, people["buyer"], kind="buy", process="negotiation", title="Wanted: 200 pumps"
    )
    deal = open_deal(
        client,
        people["seller"],
        wanted,
        transition="make-offer",
        terms={"unit_price": "48.00", "quantity": 200},
        data={"metadata": {"po": "PO-77"}},
    )
    assert deal["process"]["name"] == "negotiation"
    assert deal["state"] == "offer-pending"
    assert deal["buyer"]["id"] == people["buyer"].id
    assert deal["seller"]["id"] == people["seller"].id
    assert deal["viewer_role"] == "seller"
    assert deal["current_quote"]["created_by_role"] == "seller"
    assert deal["data"]["metadata"] == {"po": "PO-77"}


def test_nobody_negotiates_with_themselves(client: TestClient, people: dict[str, Person]) -> None:
    listing = make_listing(client, people["seller"])
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "make-offer"},
        headers=people["seller"].headers,
    )
    problem(r, 403, "NEG-008")


def test_opening_refusals_name_what_is_wrong(client: TestClient, people: dict[str, Person]) -> None:
    listing = make_listing(client, people["seller"])
    h = people["buyer"].headers
    r = client.post("/v1/deals", json={"listing_id": "nope", "transition": "make-offer"}, headers=h)
    problem(r, 404, "NEG-011")
    r = client.post(
        "/v1/deals", json={"listing_id": listing["id"], "transition": "accept"}, headers=h
    )
    assert problem(r, 422, "NEG-016")["field"] == "transition"
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "process": "haggle", "transition": "make-offer"},
        headers=h,
    )
    problem(r, 404, "NEG-011")
    r = client.post("/v1/deals", json={"listing_id": listing["id"], "transition": "make-offer"})
    problem(r, 401, "NEG-012")


# --- dry runs and idempotency -------------------------------------------------------------


def test_dry_run_answers_the_would_be_deal_and_writes_nothing(
    client: TestClient, db: Database, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    body = {
        "listing_id": listing["id"],
        "transition": "make-offer",
        "terms": {"unit_price": "45.00", "quantity": 500},
    }
    before = table_counts(db)
    r = client.post("/v1/deals?dry_run=true", json=body, headers=people["buyer"].headers)
    assert r.status_code == 200, r.text
    would_be = r.json()
    assert would_be["dry_run"] is True
    assert would_be["state"] == "offer-pending"
    assert would_be["version"] == 1
    assert would_be["current_quote"]["total_price"] == "22500.00"
    assert would_be["deadlines"]["respond_by"].startswith("2026-02-08T09:00")  # 7-day validity
    assert table_counts(db) == before
    # The refusal a real move would get, a dry run gets too, and still writes nothing.
    r = client.post(
        "/v1/deals?dry_run=true",
        json={**body, "terms": {"unit_price": "-1"}},
        headers=people["buyer"].headers,
    )
    problem(r, 422, "NEG-003")
    assert table_counts(db) == before
    # The real thing gets the first reference number: the dry run consumed none.
    deal = open_deal(
        client, people["buyer"], listing, **{k: body[k] for k in body if k != "listing_id"}
    )
    assert deal["ref"] == "DEAL-2026-0001"


def test_idempotency_key_replays_the_first_answer_and_creates_nothing_twice(
    client: TestClient, db: Database, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    body = {
        "listing_id": listing["id"],
        "transition": "make-offer",
        "terms": {"unit_price": "45.00", "quantity": 500},
    }
    headers = {**people["buyer"].headers, "Idempotency-Key": "offer-1"}
    first = client.post("/v1/deals", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    counts = table_counts(db)
    again = client.post("/v1/deals", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert table_counts(db) == counts
    # Same key, different body: refused, nothing created.
    r = client.post("/v1/deals", json={**body, "terms": {"unit_price": "46.00"}}, headers=headers)
    assert problem(r, 422, "NEG-016")["field"] == "Idempotency-Key"
    assert table_counts(db) == counts
    # Keys belong to their user: the same key from someone else is a new request.
    other = client.post(
        "/v1/deals",
        json=body,
        headers={**people["other"].headers, "Idempotency-Key": "offer-1"},
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


def test_a_dry_run_does_not_use_up_an_idempotency_key(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    body = {"listing_id": listing["id"], "transition": "make-offer", "terms": {"quantity": 3}}
    headers = {**people["buyer"].headers, "Idempotency-Key": "k-dry"}
    dry = client.post("/v1/deals?dry_run=true", json=body, headers=headers)
    assert dry.status_code == 200
    real = client.post("/v1/deals", json=body, headers=headers)
    assert real.status_code == 201
    assert "idempotent-replayed" not in real.headers
    assert real.json()["ref"].startswith("DEAL-")


# --- bad input ----------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("float money", {"terms": {"unit_price": 45.5}}, 422, "NEG-003"),
    ("NaN money", {"terms": {"unit_price": "NaN"}}, 422, "NEG-003"),
    ("infinite money", {"terms": {"unit_price": "Infinity"}}, 422, "NEG-003"),
    ("exponent money", {"terms": {"unit_price": "1e9"}}, 422, "NEG-003"),
    ("boolean money", {"terms": {"unit_price": True}}, 422, "NEG-003"),
    ("money as object", {"terms": {"unit_price": {"amount": 4}}}, 422, "NEG-003"),
    ("huge money", {"terms": {"unit_price": "9" * 30}}, 422, "NEG-003"),
    ("too many digits", {"terms": {"unit_price": "9" * 400}}, 422, "NEG-003"),
    ("huge quantity", {"terms": {"quantity": 10**30}}, 422, "NEG-003"),
    ("text quantity", {"terms": {"quantity": "many"}}, 422, "NEG-003"),
    ("negative lead time", {"terms": {"lead_time_days": -3}}, 422, "NEG-003"),
    ("naive valid_until", {"terms": {"valid_until": "2026-03-01T00:00:00"}}, 422, "NEG-003"),
    ("unknown term", {"terms": {"colour": "red"}}, 422, "NEG-003"),
    ("1 MB message", {"message": "x" * 1_000_000}, 422, "NEG-003"),
    ("1 MB data", {"data": {"blob": "x" * 1_000_000}}, 422, "NEG-016"),
    ("unknown field", {"price": "4"}, 422, "NEG-016"),
    ("wrong transition type", {"transition": 7}, 422, "NEG-016"),
    ("terms not an object", {"terms": "cheap"}, 422, "NEG-003"),
]


def test_bad_deal_input_is_refused_with_a_problem_and_writes_nothing(
    client: TestClient, db: Database, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    before = table_counts(db)
    wrong = {}
    for name, change, status, code in BAD_BODIES:
        body = {"listing_id": listing["id"], "transition": "make-offer", **change}
        r = client.post("/v1/deals", json=body, headers=people["buyer"].headers)
        if (why := refusal_of(r, status, code)) is not None:
            wrong[name] = why
    assert wrong == {}
    assert table_counts(db) == before


UNPARSEABLE = {
    "truncated": (b'{"listing_id": "x", "transition": ', "application/json"),
    "array": (b"[1, 2, 3]", "application/json"),
    "form": (b"listing_id=x&transition=make-offer", "application/x-www-form-urlencoded"),
    "overflowing-number": (b'{"terms": {"quantity": 1e999}}', "application/json"),
    "huge-integer": (b'{"terms": {"quantity": ' + b"9" * 5000 + b"}}", "application/json"),
    "binary": (b"\xff\xfe\x00", "application/json"),
    "empty": (b"", "application/json"),
}


def test_unparseable_bodies_are_4xx_problems(
    client: TestClient, db: Database, people: dict[str, Person]
) -> None:
    before = table_counts(db)
    wrong = {}
    for name, (content, content_type) in UNPARSEABLE.items():
        r = client.post(
            "/v1/deals",
            content=content,
            headers={**people["buyer"].headers, "Content-Type": content_type},
        )
        ok = (
            400 <= r.status_code < 500
            and r.headers["content-type"].startswith("application/problem+json")
            and r.json()["code"].startswith("NEG-")
        )
        if not ok:
            wrong[name] = f"{r.status_code} {r.text[:200]}"
    assert wrong == {}
    assert table_counts(db) == before


# --- reading one deal ---------------------------------------------------------------------


def test_a_deal_is_hidden_from_outsiders_as_not_found(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    deal = open_deal(client, people["buyer"], listing, transition="make-offer")
    r = client.get(f"/v1/deals/{deal['id']}", headers=people["other"].headers)
    missing = client.get(
        "/v1/deals/00000000-0000-0000-0000-000000000000", headers=people["other"].headers
    )
    assert problem(r, 404, "NEG-011")["detail"] == problem(missing, 404, "NEG-011")["detail"]
    problem(client.get(f"/v1/deals/{'x' * 300}", headers=people["buyer"].headers), 404, "NEG-011")
    op = client.get(f"/v1/deals/{deal['id']}", headers=people["operator"].headers)
    assert op.status_code == 200
    assert op.json()["viewer_role"] == "operator"
    problem(client.get(f"/v1/deals/{deal['id']}"), 401, "NEG-012")


# --- the list -----------------------------------------------------------------------------


def _ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()["items"]]


@pytest.fixture
def several(
    client: TestClient, clock: TestClock, people: dict[str, Person]
) -> dict[str, dict[str, Any]]:
    """Deals opened one minute apart, by (caller, listing owner):
    m1, m2: buyer buys from seller; r1: buyer asks seller for a quote (rfq);
    x1: buyer *sells* to other (other's buy listing); o1: seller buys from other;
    m3: other buys from seller."""
    sell = make_listing(client, people["seller"])
    rfq = make_listing(client, people["seller"], process="rfq")
    theirs = make_listing(client, people["other"])
    wanted = make_listing(client, people["other"], kind="buy")
    out = {}
    for name, who, listing, transition in [
        ("m1", "buyer", sell, "make-offer"),
        ("m2", "buyer", sell, "make-offer"),
        ("r1", "buyer", rfq, "request-quote"),
        ("x1", "buyer", wanted, "make-offer"),
        ("o1", "seller", theirs, "make-offer"),
        ("m3", "other", sell, "make-offer"),
    ]:
        clock.advance(minutes=1)
        out[name] = open_deal(client, people[who], listing, transition=transition)
    return out


def test_list_shows_the_callers_deals_newest_first(
    client: TestClient, people: dict[str, Person], several: dict[str, dict[str, Any]]
) -> None:
    ids = {k: v["id"] for k, v in several.items()}
    r = client.get("/v1/deals", headers=people["buyer"].headers)
    assert _ids(r) == [ids["x1"], ids["r1"], ids["m2"], ids["m1"]]
    assert r.json()["next_cursor"] is None
    item = r.json()["items"][-1]
    DealListItem.model_validate(item)
    assert item["listing_title"] == "Dell Latitude 7420 laptops, grade A"
    assert item["viewer_role"] == "buyer"
    assert item["current_quote"]["unit_price"] == "50.00"
    assert item["next_step"]["actor"] == "seller"
    assert r.json()["items"][0]["viewer_role"] == "seller"
    everything = _ids(client.get("/v1/deals", headers=people["operator"].headers))
    assert set(everything) == set(ids.values())
    assert _ids(client.get("/v1/deals", headers=people["seller"].headers)) == [
        ids["m3"], ids["o1"], ids["r1"], ids["m2"], ids["m1"],
    ]  # fmt: skip


def test_list_filters_by_state_role_and_process(
    client: TestClient, people: dict[str, Person], several: dict[str, dict[str, Any]]
) -> None:
    ids = {k: v["id"] for k, v in several.items()}
    h = people["buyer"].headers
    assert _ids(client.get("/v1/deals?role=seller", headers=h)) == [ids["x1"]]
    assert _ids(client.get("/v1/deals?role=buyer&process=rfq", headers=h)) == [ids["r1"]]
    assert _ids(client.get("/v1/deals?state=offer-pending&role=buyer", headers=h)) == [
        ids["m2"],
        ids["m1"],
    ]
    assert _ids(client.get("/v1/deals?state=closed-won", headers=h)) == []
    assert _ids(client.get("/v1/deals?process=market", headers=people["operator"].headers))
    problem(client.get("/v1/deals?role=admin", headers=h), 422, "NEG-016")
    problem(client.get("/v1/deals?limit=0", headers=h), 422, "NEG-016")
    problem(client.get("/v1/deals?limit=201", headers=h), 422, "NEG-016")
    problem(client.get("/v1/deals"), 401, "NEG-012")


def test_list_pages_with_an_opaque_cursor(
    client: TestClient, people: dict[str, Person], several: dict[str, dict[str, Any]]
) -> None:
    h = people["operator"].headers
    everything = _ids(client.get("/v1/deals", headers=h))
    seen: list[str] = []
    url = "/v1/deals?limit=2"
    while True:
        r = client.get(url, headers=h)
        page = _ids(r)
        assert len(page) <= 2
        seen += page
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        url = f"/v1/deals?limit=2&cursor={cursor}"
    assert seen == everything
    assert len(seen) == 6
    for bad in ("garbage", "eyJ4IjoxfQ", "WyIyMDI2IiwgMV0", "x" * 201):
        problem(client.get(f"/v1/deals?cursor={bad}", headers=h), 422, "NEG-016")


def test_list_of_deals_that_share_a_timestamp_pages_without_loss(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    made = {
        open_deal(client, people["buyer"], listing, transition="make-offer")["id"] for _ in range(5)
    }
    seen: list[str] = []
    cursor = ""
    while True:
        r = client.get(f"/v1/deals?limit=2{cursor}", headers=people["buyer"].headers)
        seen += _ids(r)
        if r.json()["next_cursor"] is None:
            break
        cursor = f"&cursor={r.json()['next_cursor']}"
    assert len(seen) == 5
    assert set(seen) == made


@contextmanager
def counting_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_list_takes_the_same_number_of_queries_for_2_or_12_deals(
    client: TestClient, db: Database, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], sale_mode="buy_now")

    def open_some(n: int) -> None:
        for i in range(n):
            transition = "buy-now" if i % 2 else "make-offer"
            open_deal(client, people["buyer"], listing, transition=transition)

    open_some(2)
    with counting_queries(db) as few:
        assert len(_ids(client.get("/v1/deals", headers=people["buyer"].headers))) == 2
    open_some(10)
    with counting_queries(db) as many:
        assert len(_ids(client.get("/v1/deals", headers=people["buyer"].headers))) == 12
    assert len(many) == len(few), many


# --- messages -----------------------------------------------------------------------------


def test_messages_are_posted_listed_and_never_move_the_deal(
    client: TestClient, clock: TestClock, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    deal = open_deal(client, people["buyer"], listing, transition="make-offer")
    url = f"/v1/deals/{deal['id']}/messages"
    r = client.post(
        url, json={"body": "Is the warranty transferable?"}, headers=people["buyer"].headers
    )
    assert r.status_code == 201, r.text
    first = r.json()
    MessageRead.model_validate(first)
    assert set(first) == {"id", "author_id", "body", "created_at"}
    assert first["author_id"] == people["buyer"].id
    for i in range(3):
        clock.advance(minutes=1)
        who = people["seller"] if i % 2 == 0 else people["buyer"]
        assert client.post(url, json={"body": f"note {i}"}, headers=who.headers).status_code == 201
    r = client.get(url, headers=people["seller"].headers)
    assert [m["body"] for m in r.json()["items"]] == [
        "Is the warranty transferable?", "note 0", "note 1", "note 2",
    ]  # fmt: skip
    page = client.get(f"{url}?limit=3", headers=people["seller"].headers).json()
    assert len(page["items"]) == 3
    rest = client.get(
        f"{url}?limit=3&cursor={page['next_cursor']}", headers=people["seller"].headers
    )
    assert [m["body"] for m in rest.json()["items"]] == ["note 2"]
    after = client.get(f"/v1/deals/{deal['id']}", headers=people["buyer"].headers).json()
    assert (after["version"], after["state"], after["transition_count"]) == (
        deal["version"],
        deal["state"],
        deal["transition_count"],
    )
    events = client.get(f"/v1/deals/{deal['id']}/events", headers=people["buyer"].headers).json()
    assert [e["type"] for e in events["items"]].count("MESSAGE_POSTED") == 4


def test_message_refusals(client: TestClient, db: Database, people: dict[str, Person]) -> None:
    listing = make_listing(client, people["seller"])
    deal = open_deal(client, people["buyer"], listing, transition="make-offer")
    url = f"/v1/deals/{deal['id']}/messages"
    h = people["buyer"].headers
    before = table_counts(db)
    problem(client.post(url, json={"body": "x" * 1_000_000}, headers=h), 422, "NEG-016")
    problem(client.post(url, json={"body": ""}, headers=h), 422, "NEG-016")
    problem(client.post(url, json={"body": "   "}, headers=h), 422, "NEG-016")
    problem(client.post(url, json={"body": 5}, headers=h), 422, "NEG-016")
    problem(client.post(url, json={"text": "hi"}, headers=h), 422, "NEG-016")
    problem(client.post(url, json={"body": "hi"}, headers=people["other"].headers), 404, "NEG-011")
    problem(client.get(url, headers=people["other"].headers), 404, "NEG-011")
    problem(client.post(url, json={"body": "hi"}), 401, "NEG-012")
    problem(client.get(f"{url}?cursor=zzz", headers=h), 422, "NEG-016")
    assert table_counts(db) == before
    # Idempotency-Key on messages too.
    hk = {**h, "Idempotency-Key": "msg-1"}
    one = client.post(url, json={"body": "hello"}, headers=hk)
    two = client.post(url, json={"body": "hello"}, headers=hk)
    assert one.status_code == two.status_code == 201
    assert two.headers["idempotent-replayed"] == "true"
    assert one.json() == two.json()
    assert len(client.get(url, headers=h).json()["items"]) == 1
