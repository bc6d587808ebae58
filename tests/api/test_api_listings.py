"""Listings: create, validate, find, page, edit; edits never reach open deals."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from dealroom.clock import TestClock
from dealroom.db.models import Deal
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from factories import T0
from people import Person, add_user, make_listing, offer


def seller(db: Database) -> Person:
    return add_user(db, T0, "nora@parts.example", organization="Parts Inc")


def buyer(db: Database) -> Person:
    return add_user(db, T0, "amal@acme.example", organization="Acme Corp")


# --- creating ---------------------------------------------------------------------------


def test_a_listing_is_created_with_defaults_and_exact_money(
    client: TestClient, db: Database
) -> None:
    owner = seller(db)
    r = client.post(
        "/v1/listings",
        json={"title": "M8 hex bolts", "currency": "SAR", "unit_price": "0.0125", "quantity": 5},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    listing = r.json()
    assert listing["owner_id"] == owner.id
    assert listing["unit_price"] == "0.0125"
    assert listing["kind"] == "sell"
    assert listing["sale_mode"] == "negotiable"
    assert listing["process"] == "market"
    assert listing["status"] == "active"
    assert listing["offer_count"] == 0
    assert listing["attributes"] == {}
    assert listing["rules"] == {}
    again = client.get(f"/v1/listings/{listing['id']}").json()
    assert again["unit_price"] == "0.0125"  # as stored, on every database
    assert again == listing


def test_every_field_comes_back_as_sent(client: TestClient, db: Database) -> None:
    body = {
        "title": "Wanted: 5,000 pallets",
        "description": "EUR pallets, heat treated",
        "category": "logistics",
        "kind": "buy",
        "currency": "USD",
        "unit_price": "12.50",
        "quantity": 5000,
        "min_order_qty": 500,
        "max_order_qty": 5000,
        "sale_mode": "auction",
        "process": "rfq",
        "attributes": {"standard": "EPAL", "sizes": ["1200x800"]},
        "rules": {"max_rounds": 3, "counter_response_window": "PT48H"},
    }
    r = client.post("/v1/listings", json=body, headers=seller(db).headers)
    assert r.status_code == 201, r.text
    got = r.json()
    assert {k: got[k] for k in body} == body


def test_each_sale_mode_defaults_to_the_market_process(client: TestClient, db: Database) -> None:
    owner = seller(db)
    for mode in ("negotiable", "buy_now", "auction"):
        assert make_listing(client, owner, sale_mode=mode)["process"] == "market"


def test_listing_validation_lists_every_bad_field(client: TestClient, db: Database) -> None:
    body = {
        "title": "",
        "currency": "sar",
        "unit_price": 50.5,  # a float: money travels as a decimal string
        "quantity": 0,
        "min_order_qty": -1,
        "kind": "rent",
        "sale_mode": "raffle",
        "process": "Not A Name",
        "rules": {"max_rounds": "five", "no_such_rule": 1},
        "colour": "red",
    }
    r = client.post("/v1/listings", json=body, headers=seller(db).headers)
    assert r.status_code == 422
    problem = r.json()
    fields = {e["field"].split(".")[0] for e in problem["errors"]}
    assert fields == {
        "title", "currency", "unit_price", "quantity", "min_order_qty", "kind", "sale_mode",
        "process", "rules", "colour",
    }  # fmt: skip
    rules_error = next(e for e in problem["errors"] if e["field"] == "rules")
    assert "max_rounds" in rules_error["message"]
    assert "no_such_rule" in rules_error["message"]


def test_money_must_be_a_positive_decimal_string(client: TestClient, db: Database) -> None:
    owner = seller(db)
    for price in ("0", "0.00", "-5", "1e3", "12.1234567", "abc", 12, "1" * 30):
        r = client.post(
            "/v1/listings",
            json={"title": "Bolts", "currency": "SAR", "unit_price": price},
            headers=owner.headers,
        )
        assert r.status_code == 422, price
        assert [e["field"] for e in r.json()["errors"]] == ["unit_price"]


def test_order_range_must_make_sense(client: TestClient, db: Database) -> None:
    owner = seller(db)
    base = {"title": "Bolts", "currency": "SAR", "unit_price": "1.00", "quantity": 100}
    for extra in ({"min_order_qty": 50, "max_order_qty": 10}, {"min_order_qty": 101}):
        r = client.post("/v1/listings", json={**base, **extra}, headers=owner.headers)
        assert r.status_code == 422, extra


def test_process_must_be_known(client: TestClient, db: Database) -> None:
    r = client.post(
        "/v1/listings",
        json={"title": "Bolts", "currency": "SAR", "unit_price": "1.00", "process": "haggle"},
        headers=seller(db).headers,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "NEG-016"
    assert [e["field"] for e in r.json()["errors"]] == ["process"]


def test_rules_are_checked_against_the_process_limits(client: TestClient, db: Database) -> None:
    # NEG-T05: a seller may lengthen the counter window, but not past 72 hours.
    r = client.post(
        "/v1/listings",
        json={
            "title": "Bolts",
            "currency": "SAR",
            "unit_price": "1.00",
            "rules": {"counter_response_window": "PT96H"},
        },
        headers=seller(db).headers,
    )
    assert r.status_code == 422
    assert "NEG-T05" in r.text


def test_huge_bodies_are_refused_as_invalid(client: TestClient, db: Database) -> None:
    owner = seller(db)
    base = {"title": "Bolts", "currency": "SAR", "unit_price": "1.00"}
    for extra in (
        {"title": "x" * 10_000},
        {"description": "x" * 1_000_000},
        {"attributes": {"blob": "x" * 100_000}},
        {"quantity": 10**12},
    ):
        r = client.post("/v1/listings", json={**base, **extra}, headers=owner.headers)
        assert r.status_code == 422, list(extra)


def test_creating_needs_a_signed_in_caller(client: TestClient) -> None:
    r = client.post("/v1/listings", json={"title": "B", "currency": "SAR", "unit_price": "1"})
    assert r.status_code == 401


def test_a_retried_create_with_the_same_key_makes_one_listing(
    client: TestClient, db: Database
) -> None:
    owner = seller(db)
    headers = {**owner.headers, "Idempotency-Key": "listing-1"}
    body = {"title": "Bolts", "currency": "SAR", "unit_price": "1.00"}
    first = client.post("/v1/listings", json=body, headers=headers)
    second = client.post("/v1/listings", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(client.get("/v1/listings").json()["items"]) == 1
    other = client.post("/v1/listings", json={**body, "title": "Nuts"}, headers=headers)
    assert other.status_code == 422  # the key was used for a different request


# --- reading ----------------------------------------------------------------------------


def test_listings_are_public_to_read(client: TestClient, db: Database) -> None:
    listing = make_listing(client, seller(db))
    assert client.get(f"/v1/listings/{listing['id']}").status_code == 200
    assert client.get("/v1/listings").json()["items"][0]["id"] == listing["id"]


def test_unknown_listing_is_not_found(client: TestClient) -> None:
    for listing_id in ("00000000-0000-0000-0000-000000000000", "y" * 100):
        r = client.get(f"/v1/listings/{listing_id}")
        assert r.status_code == 404
        assert r.json()["code"] == "NEG-011"


def test_search_and_filters(client: TestClient, db: Database, clock: TestClock) -> None:
    nora, amal = seller(db), buyer(db)
    laptops = make_listing(client, nora, title="Dell Latitude laptops", category="laptops")
    bolts = make_listing(
        client, nora, title="Hex bolts", description="M8 zinc 100% steel", category="hardware",
        sale_mode="buy_now",
    )  # fmt: skip
    wanted = make_listing(client, amal, title="Wanted: pallets", kind="buy", category="logistics")
    closed = make_listing(client, nora, title="Old stock laptops", category="laptops")
    client.patch(f"/v1/listings/{closed['id']}", json={"status": "closed"}, headers=nora.headers)

    def ids(**params: Any) -> set[str]:
        r = client.get("/v1/listings", params=params)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert ids() == {laptops["id"], bolts["id"], wanted["id"]}  # active ones by default
    assert ids(q="LAPTOP") == {laptops["id"]}
    assert ids(q="zinc") == {bolts["id"]}  # the description counts
    assert ids(q="100%") == {bolts["id"]}  # LIKE wildcards are matched literally
    assert ids(q="_") == set()
    assert ids(category="laptops", status="all") == {laptops["id"], closed["id"]}
    assert ids(status="closed") == {closed["id"]}
    assert ids(kind="buy") == {wanted["id"]}
    assert ids(sale_mode="buy_now") == {bolts["id"]}
    assert ids(owner_id=amal.id) == {wanted["id"]}


def test_bad_filters_are_refused(client: TestClient) -> None:
    for params in ({"kind": "rent"}, {"status": "gone"}, {"limit": 0}, {"limit": 101},
                   {"q": "x" * 300}):  # fmt: skip
        assert client.get("/v1/listings", params=params).status_code == 422, params


def test_pages_follow_the_cursor_newest_first(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    owner = seller(db)
    made = []
    for i in range(5):
        made.append(make_listing(client, owner, title=f"Lot {i}")["id"])
        if i != 2:  # two listings share a timestamp: the id breaks the tie
            clock.advance(minutes=1)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/listings", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == 5
    assert seen[0] == made[-1]


def test_a_cursor_given_out_before_the_one_format_still_pages(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    owner = seller(db)
    for i in range(3):
        make_listing(client, owner, title=f"Lot {i}")
        clock.advance(minutes=1)
    first = client.get("/v1/listings", params={"limit": 1}).json()
    last = first["items"][-1]
    when = datetime.fromisoformat(last["created_at"].replace("Z", "+00:00")).isoformat()
    old = base64.urlsafe_b64encode(f"{when}|{last['id']}".encode()).decode().rstrip("=")
    by_old = client.get("/v1/listings", params={"limit": 1, "cursor": old})
    by_new = client.get("/v1/listings", params={"limit": 1, "cursor": first["next_cursor"]})
    assert by_old.status_code == 200, by_old.text
    assert by_old.json() == by_new.json()
    assert by_old.json()["items"][0]["title"] == "Lot 1"


def test_a_cursor_we_did_not_give_is_refused(client: TestClient) -> None:
    for cursor in ("not-a-cursor", "bm9waXBl", "!!!"):
        r = client.get("/v1/listings", params={"cursor": cursor})
        assert r.status_code == 422
        assert r.json()["field"] == "cursor"


def test_a_listing_shows_how_many_open_deals_it_has(client: TestClient, db: Database) -> None:
    nora = seller(db)
    listing = make_listing(client, nora)
    other = make_listing(client, nora, title="Other")
    for i in range(2):
        who = add_user(db, T0, f"buyer{i}@acme.example")
        assert offer(client, who, listing["id"]).status_code == 201
    assert client.get(f"/v1/listings/{listing['id']}").json()["offer_count"] == 2
    items = {i["id"]: i["offer_count"] for i in client.get("/v1/listings").json()["items"]}
    assert items == {listing["id"]: 2, other["id"]: 0}


# --- editing ----------------------------------------------------------------------------


def test_owner_edits_only_what_is_sent_and_updated_at_moves(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    nora = seller(db)
    listing = make_listing(client, nora, description="Grade A", min_order_qty=10)
    clock.advance(hours=1)
    r = client.patch(
        f"/v1/listings/{listing['id']}",
        json={"unit_price": "47.50", "description": None, "attributes": {"grade": "A"}},
        headers=nora.headers,
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["unit_price"] == "47.50"
    assert edited["description"] is None
    assert edited["attributes"] == {"grade": "A"}
    assert edited["title"] == listing["title"]
    assert edited["min_order_qty"] == 10
    assert edited["updated_at"] == "2026-02-01T10:00:00.000000Z"
    assert edited["created_at"] == listing["created_at"]
    assert client.get(f"/v1/listings/{listing['id']}").json() == edited


def test_only_the_owner_or_an_admin_edits(client: TestClient, db: Database) -> None:
    nora = seller(db)
    listing = make_listing(client, nora)
    stranger = buyer(db)
    operator = add_user(db, T0, "ops@dealroom.example", roles=("operator",))
    admin = add_user(db, T0, "admin@dealroom.example", roles=("admin",))
    for who in (stranger, operator):
        r = client.patch(
            f"/v1/listings/{listing['id']}", json={"title": "Mine"}, headers=who.headers
        )
        assert r.status_code == 403
        assert r.json()["code"] == "NEG-008"
    r = client.patch(
        f"/v1/listings/{listing['id']}", json={"title": "Fixed"}, headers=admin.headers
    )
    assert r.status_code == 200
    assert r.json()["owner_id"] == nora.id
    assert client.patch(f"/v1/listings/{listing['id']}", json={"title": "x"}).status_code == 401
    missing = client.patch(
        "/v1/listings/00000000-0000-0000-0000-000000000000",
        json={"title": "x"},
        headers=nora.headers,
    )
    assert missing.status_code == 404


def test_edit_validation(client: TestClient, db: Database) -> None:
    nora = seller(db)
    listing = make_listing(client, nora, quantity=100)
    url = f"/v1/listings/{listing['id']}"
    for body in (
        {"title": None},
        {"unit_price": None},
        {"kind": "buy"},  # who buys and who sells is fixed once deals may exist
        {"owner_id": "someone"},
        {"unit_price": 47.5},
        {"status": "deleted"},
        {"min_order_qty": 200},  # more than the 100 on offer
        {"process": "haggle"},
        {"rules": {"max_rounds": -1}},
    ):
        r = client.patch(url, json=body, headers=nora.headers)
        assert r.status_code == 422, (body, r.text)
    assert client.get(url).json() == listing  # nothing changed


def test_rules_can_be_replaced_by_a_patch(client: TestClient, db: Database) -> None:
    nora = seller(db)
    listing = make_listing(client, nora, rules={"max_rounds": 4})
    r = client.patch(
        f"/v1/listings/{listing['id']}",
        json={"rules": {"max_rounds": 2, "quote_validity": "P3D"}},
        headers=nora.headers,
    )
    assert r.status_code == 200
    assert r.json()["rules"] == {"max_rounds": 2, "quote_validity": "P3D"}
    cleared = client.patch(
        f"/v1/listings/{listing['id']}", json={"rules": {}}, headers=nora.headers
    )
    assert cleared.json()["rules"] == {}


def test_edits_never_touch_the_snapshot_of_an_open_deal(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    nora, amal = seller(db), buyer(db)
    listing = make_listing(client, nora, unit_price="50.00", title="Grade A laptops")
    r = offer(client, amal, listing["id"])
    assert r.status_code == 201, r.text
    deal = r.json()
    with session_scope(db) as s:
        before = s.execute(select(Deal.listing_snapshot).where(Deal.id == deal["id"])).scalar_one()
    clock.advance(hours=1)
    edit = client.patch(
        f"/v1/listings/{listing['id']}",
        json={"unit_price": "60.00", "title": "Grade B laptops", "quantity": 3},
        headers=nora.headers,
    )
    assert edit.status_code == 200
    with session_scope(db) as s:
        after = s.execute(select(Deal.listing_snapshot).where(Deal.id == deal["id"])).scalar_one()
    assert after == before
    assert after["title"] == "Grade A laptops"
    seen = client.get(f"/v1/deals/{deal['id']}", headers=amal.headers).json()
    assert seen["listing_snapshot"] == before


def test_closing_a_listing_stops_new_deals_but_not_open_ones(
    client: TestClient, db: Database
) -> None:
    nora, amal = seller(db), buyer(db)
    listing = make_listing(client, nora)
    deal = offer(client, amal, listing["id"]).json()
    r = client.patch(
        f"/v1/listings/{listing['id']}", json={"status": "closed"}, headers=nora.headers
    )
    assert r.status_code == 200
    assert r.json()["status"] == "closed"
    late = add_user(db, T0, "late@acme.example")
    refused = offer(client, late, listing["id"])
    assert refused.status_code == 404
    # The open deal goes on.
    answer = client.post(
        f"/v1/deals/{deal['id']}/transitions",
        json={"name": "accept", "expected_version": deal["version"]},
        headers=nora.headers,
    )
    assert answer.status_code == 200, answer.text
