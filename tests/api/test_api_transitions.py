"""POST /v1/deals/{id}/transitions and the quote routes over HTTP: whole flows of the
market, offer and negotiation processes, dry runs, stale versions (NEG-004), retries with
Idempotency-Key, and refusals that leave the deal exactly as it was."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dealroom.api.schemas import DealRead, QuoteDiff
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


def fire(
    client: TestClient,
    who: Person,
    deal: dict[str, Any],
    name: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    return client.post(
        f"/v1/deals/{deal['id']}/transitions{query}",
        json={"name": name, "expected_version": deal["version"], **body},
        headers={**who.headers, **(headers or {})},
    )


def move(client: TestClient, who: Person, deal: dict[str, Any], name: str, **body: Any) -> Any:
    r = fire(client, who, deal, name, **body)
    assert r.status_code == 200, r.text
    DealRead.model_validate(r.json())
    return r.json()


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.json()
    return dict(r.json())


def snapshot(client: TestClient, who: Person, deal_id: str) -> tuple[Any, Any, Any]:
    """Everything a party can read of a deal."""
    h = who.headers
    return (
        client.get(f"/v1/deals/{deal_id}", headers=h).json(),
        client.get(f"/v1/deals/{deal_id}/quotes", headers=h).json(),
        client.get(f"/v1/deals/{deal_id}/events", headers=h).json(),
    )


@pytest.fixture
def offer_on_table(
    client: TestClient, people: dict[str, Person]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A market deal with the buyer's offer (version 1) pending."""
    listing = make_listing(client, people["seller"])
    deal = open_deal(
        client,
        people["buyer"],
        listing,
        transition="make-offer",
        terms={"unit_price": "45.00", "quantity": 500},
        message="Can collect next week",
    )
    return deal, listing


# --- the market process, to closed-won ----------------------------------------------------


@pytest.mark.parametrize("waived", [True, False])
def test_market_deal_closes_two_sided_into_order_escrow_and_shipment(
    client: TestClient,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
    waived: bool,
) -> None:
    deal, _ = offer_on_table
    buyer, seller = people["buyer"], people["seller"]
    deal = move(
        client,
        seller,
        deal,
        "counter",
        terms={"unit_price": "48.00"},
        message="48 is the best we can do",
    )
    assert deal["current_quote"]["created_by_role"] == "seller"
    assert deal["available_transitions"] == ["withdraw"]
    deal = move(client, buyer, deal, "accept")
    assert deal["state"] == "terms-agreed"
    assert deal["next_step"]["action"] == "request-close"
    assert deal["next_step"]["actor"] == "seller"
    problem(fire(client, buyer, deal, "request-close"), 403, "NEG-008")
    problem(
        fire(client, seller, deal, "request-close", data={"escrow_waived": "yes"}), 422, "NEG-003"
    )
    deal = move(client, seller, deal, "request-close", data={"escrow_waived": waived})
    assert deal["state"] == "close-requested"
    assert deal["handoff"] is None
    deal = move(client, buyer, deal, "confirm-close")
    assert deal["state"] == "closed-won"
    assert deal["closed_at"] is not None
    handoff = deal["handoff"]
    assert re.fullmatch(r"ORD-2026-\d{4}", handoff["order_ref"])
    assert handoff["total"] == "24000.00"
    assert handoff["currency"] == "SAR"
    assert handoff["escrow"]["status"] == ("waived" if waived else "open")
    assert handoff["shipment"]["status"] == "awaiting_pickup"
    assert handoff["fees"][0]["name"] == "platform"
    assert handoff["fees"][0]["amount"] == "600.00"  # 2.5%, beside the total, not in it
    events = client.get(f"/v1/deals/{deal['id']}/events", headers=buyer.headers).json()["items"]
    assert [e["type"] for e in events][-4:] == [
        "DEAL_CLOSED",
        "ORDER_CREATED",
        "ESCROW_WAIVED" if waived else "ESCROW_OPENED",
        "SHIPMENT_CREATED",
    ]
    assert events[-3]["payload"]["order_ref"] == handoff["order_ref"]
    problem(fire(client, buyer, deal, "confirm-close"), 409, "NEG-005")


def test_withdraw_and_reject_end_the_market_deal(
    client: TestClient,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, listing = offer_on_table
    problem(fire(client, people["seller"], deal, "withdraw"), 403, "NEG-008")
    deal = move(client, people["buyer"], deal, "withdraw", reason="Found another supplier")
    assert deal["state"] == "withdrawn"
    assert deal["current_quote"]["status"] == "withdrawn"
    problem(fire(client, people["buyer"], deal, "accept"), 409, "NEG-007")
    other = open_deal(client, people["other"], listing, transition="make-offer")
    other = move(client, people["seller"], other, "reject", reason="Too low")
    assert other["state"] == "rejected"
    assert other["current_quote"]["status"] == "rejected"


# --- the offer process --------------------------------------------------------------------


def test_offer_flow_with_a_request_for_information_then_acceptance(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(
        client, people["seller"], process="offer", unit_price="45000.00", quantity=1
    )
    deal = open_deal(
        client,
        people["buyer"],
        listing,
        transition="submit-offer",
        terms={"unit_price": "40000.00", "quantity": 1},
        message=OFFER_MESSAGE,
        data=OFFER_FIELDS,
    )
    assert deal["state"] == "offer-pending"
    deal = move(client, people["seller"], deal, "request-info", message="Proof of funds, please.")
    assert deal["state"] == "offer-pending"
    assert deal["data"]["info_requested"]["message"] == "Proof of funds, please."
    deal = move(
        client,
        people["seller"],
        deal,
        "counter",
        terms={"unit_price": "43000.00"},
        message="We can meet you part of the way.",
    )
    deal = move(client, people["buyer"], deal, "accept")
    assert deal["state"] == "accepted"
    assert deal["accepted_quote"]["unit_price"] == "43000.00"
    assert deal["handoff"]["total"] == "43000.00"
    assert deal["handoff"]["escrow"] is None


# --- the negotiation process (Sharetribe), reverse flow ----------------------------------


def test_negotiation_reverse_flow_from_seller_offer_to_paid(
    client: TestClient, people: dict[str, Person]
) -> None:
    buyer, seller = people["buyer"], people["seller"]
    wanted = make_listing(client, buyer, kind="buy", process="negotiation", title="Wanted: pumps")
    deal = open_deal(
        client,
        seller,
        wanted,
        transition="make-offer",
        terms={"unit_price": "48.00", "quantity": 200},
        data={"protectedData": {"phone": "+966 5"}},
    )
    assert deal["state"] == "offer-pending"
    assert (
        "customer-make-counter-offer"
        in client.get(f"/v1/deals/{deal['id']}", headers=buyer.headers).json()[
            "available_transitions"
        ]
    )
    deal = move(client, buyer, deal, "customer-make-counter-offer", terms={"unit_price": "44.00"})
    assert deal["state"] == "customer-offer-pending"
    assert deal["current_quote"]["created_by_role"] == "buyer"
    deal = move(client, seller, deal, "provider-accept-counter-offer")
    assert deal["state"] == "offer-pending"
    deal = move(client, buyer, deal, "request-payment-to-accept-offer")
    assert deal["state"] == "pending-payment"
    deal = move(client, buyer, deal, "confirm-payment")
    assert deal["state"] == "offer-accepted"
    assert deal["accepted_quote"]["unit_price"] == "44.00"
    assert deal["accepted_quote"]["total_price"] == "8800.00"
    deal = move(client, seller, deal, "deliver")
    assert deal["state"] == "delivered"
    # Operators fire operator-* transitions.
    problem(fire(client, buyer, deal, "operator-request-changes"), 403, "NEG-008")
    deal = move(client, people["operator"], deal, "operator-request-changes")
    assert deal["state"] == "changes-requested"


# --- dry runs -----------------------------------------------------------------------------


def test_dry_run_answers_the_would_be_deal_and_writes_nothing(
    client: TestClient,
    db: Database,
    clock: TestClock,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    seller = people["seller"]
    clock.advance(hours=1)
    before = snapshot(client, seller, deal["id"])
    counts = table_counts(db)
    r = fire(
        client,
        seller,
        deal,
        "counter",
        query="?dry_run=true",
        terms={"unit_price": "48.00"},
        message="48 is the best we can do",
    )
    assert r.status_code == 200, r.text
    would_be = r.json()
    assert would_be["dry_run"] is True
    assert would_be["version"] == deal["version"] + 1
    assert would_be["current_quote"]["version"] == 2
    assert would_be["current_quote"]["unit_price"] == "48.00"
    # Its deadlines are the ones the counter would set: a fresh 7-day validity from now.
    assert deal["deadlines"]["respond_by"].startswith("2026-02-08T09:00")
    assert would_be["deadlines"]["respond_by"].startswith("2026-02-08T10:00")
    assert snapshot(client, seller, deal["id"]) == before
    assert table_counts(db) == counts
    # A dry run of an accepting move creates no order either.
    r = fire(client, seller, deal, "accept", query="?dry_run=true")
    assert r.status_code == 200
    assert r.json()["state"] == "terms-agreed"
    assert table_counts(db) == counts
    # And a refused dry run is refused like the real move.
    problem(fire(client, people["buyer"], deal, "accept", query="?dry_run=true"), 403, "NEG-008")
    problem(
        fire(client, seller, deal, "counter", query="?dry_run=true", terms={"unit_price": "48.00"}),
        422,
        "NEG-003",
    )
    assert snapshot(client, seller, deal["id"]) == before
    assert table_counts(db) == counts


# --- stale versions -----------------------------------------------------------------------


def test_stale_expected_version_is_409_with_the_current_version_and_writes_nothing(
    client: TestClient,
    db: Database,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    seller = people["seller"]
    moved = move(
        client, seller, deal, "counter", terms={"unit_price": "48.00"}, message="Best we can do"
    )
    before = snapshot(client, seller, deal["id"])
    counts = table_counts(db)
    # The buyer decides on what they saw at version 1.
    r = fire(client, people["buyer"], deal, "accept")
    body = problem(r, 409, "NEG-004")
    assert body["current_version"] == moved["version"] == 2
    assert body["deal_id"] == deal["id"]
    for version in (0, 3, 2**31 - 1):
        r = fire(client, people["buyer"], {**deal, "version": version}, "accept")
        assert problem(r, 409, "NEG-004")["current_version"] == 2
    assert snapshot(client, seller, deal["id"]) == before
    assert table_counts(db) == counts


# --- idempotency --------------------------------------------------------------------------


def test_retried_transition_with_the_same_key_replays_and_changes_nothing(
    client: TestClient,
    db: Database,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    key = {"Idempotency-Key": "accept-v1"}
    first = fire(client, people["seller"], deal, "accept", headers=key)
    assert first.status_code == 200, first.text
    counts = table_counts(db)
    events = client.get(f"/v1/deals/{deal['id']}/events", headers=people["seller"].headers).json()
    # The answer was lost on the way; the client retries the very same request.
    again = fire(client, people["seller"], deal, "accept", headers=key)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert table_counts(db) == counts
    assert (
        client.get(f"/v1/deals/{deal['id']}/events", headers=people["seller"].headers).json()
        == events
    )
    # Without the key the same request is a new, stale one.
    problem(fire(client, people["seller"], deal, "accept"), 409, "NEG-004")
    # The same key on a different body is refused.
    r = fire(client, people["seller"], deal, "reject", headers=key)
    assert problem(r, 422, "NEG-016")["field"] == "Idempotency-Key"
    r = fire(client, people["seller"], deal, "accept", headers={"Idempotency-Key": "k" * 201})
    problem(r, 422, "NEG-016")
    assert table_counts(db) == counts


# --- bad input leaves the deal as it was ---------------------------------------------------

BAD_TRANSITIONS: list[tuple[str, Any, int, str]] = [
    ("unknown transition", {"name": "haggle"}, 409, "NEG-007"),
    ("not the counterparty's move", {"name": "withdraw"}, 403, "NEG-008"),
    ("counter without message", {"name": "counter", "terms": {"unit_price": "48"}}, 422, "NEG-003"),
    (
        "counter beyond 50%",
        {"name": "counter", "terms": {"unit_price": "90.00"}, "message": "no"},
        422,
        "NEG-003",
    ),
    (
        "counter changing nothing",
        {"name": "counter", "terms": {"unit_price": "45.00"}, "message": "same"},
        422,
        "NEG-003",
    ),
    ("float price", {"name": "counter", "terms": {"unit_price": 47.5}}, 422, "NEG-003"),
    ("NaN price", {"name": "counter", "terms": {"unit_price": "nan"}}, 422, "NEG-003"),
    ("huge price", {"name": "counter", "terms": {"unit_price": "1" + "0" * 29}}, 422, "NEG-003"),
    ("huge quantity", {"name": "counter", "terms": {"quantity": 2**70}}, 422, "NEG-003"),
    (
        "price in the past",
        {"name": "counter", "terms": {"valid_until": "2000-01-01T00:00:00Z"}, "message": "m"},
        422,
        "NEG-003",
    ),
    ("1 MB message", {"name": "counter", "message": "m" * 1_000_000}, 422, "NEG-003"),
    ("long reason", {"name": "reject", "reason": "r" * 1001}, 422, "NEG-003"),
    ("1 MB data", {"name": "reject", "data": {"x": ["y" * 1000] * 1000}}, 422, "NEG-016"),
    ("wrong version type", {"name": "accept", "expected_version": "one"}, 422, "NEG-016"),
    ("huge version", {"name": "accept", "expected_version": 10**30}, 422, "NEG-016"),
    ("negative version", {"name": "accept", "expected_version": -1}, 422, "NEG-016"),
    ("missing name", {"name": None}, 422, "NEG-016"),
    ("unknown field", {"name": "accept", "when": "now"}, 422, "NEG-016"),
    ("long name", {"name": "a" * 101}, 422, "NEG-016"),
]


def test_refused_transitions_leave_the_deal_exactly_as_it_was(
    client: TestClient,
    db: Database,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    seller = people["seller"]
    before = snapshot(client, seller, deal["id"])
    counts = table_counts(db)
    wrong = {}
    for name, body, status, code in BAD_TRANSITIONS:
        r = client.post(
            f"/v1/deals/{deal['id']}/transitions",
            json={"expected_version": deal["version"], **body},
            headers=seller.headers,
        )
        if (why := refusal_of(r, status, code)) is not None:
            wrong[name] = why
        elif snapshot(client, seller, deal["id"]) != before or table_counts(db) != counts:
            wrong[name] = "the refused request changed the deal"
    assert wrong == {}


UNPARSEABLE = {
    "truncated": b'{"name": "accept", "expected_version": ',
    "null": b"null",
    "string": b'"accept"',
    "binary": b"\x00\x01",
    "huge-integer": b'{"name": "accept", "expected_version": ' + b"7" * 5000 + b"}",
}


def test_unparseable_transition_bodies_are_4xx(
    client: TestClient,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    before = snapshot(client, people["seller"], deal["id"])
    wrong = {}
    for name, content in UNPARSEABLE.items():
        r = client.post(
            f"/v1/deals/{deal['id']}/transitions",
            content=content,
            headers={**people["seller"].headers, "Content-Type": "application/json"},
        )
        if not (400 <= r.status_code < 500 and r.json()["code"].startswith("NEG-")):
            wrong[name] = f"{r.status_code} {r.text[:200]}"
    assert wrong == {}
    assert snapshot(client, people["seller"], deal["id"]) == before


def test_expired_quote_cannot_be_answered(
    client: TestClient,
    clock: TestClock,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    deal = move(
        client,
        people["seller"],
        deal,
        "counter",
        terms={"unit_price": "48.00", "valid_until": "2026-02-01T10:00:00Z"},
        message="Valid for an hour",
    )
    clock.advance(hours=2)
    problem(fire(client, people["buyer"], deal, "accept"), 410, "NEG-001")


# --- quotes and their differences ---------------------------------------------------------


def test_quotes_are_listed_oldest_first_and_diffed(
    client: TestClient,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    buyer, seller = people["buyer"], people["seller"]
    deal = move(
        client,
        seller,
        deal,
        "counter",
        terms={"unit_price": "49.00", "quantity": 400, "delivery_terms": "FOB Jeddah"},
        message="Smaller lot, better price per unit for you",
    )
    deal = move(
        client,
        buyer,
        deal,
        "counter",
        terms={"unit_price": "47.00", "discount_percent": "2.5"},
        message="Meet in the middle",
    )
    quotes = client.get(f"/v1/deals/{deal['id']}/quotes", headers=buyer.headers).json()["items"]
    assert [q["version"] for q in quotes] == [1, 2, 3]
    assert [q["status"] for q in quotes] == ["countered", "countered", "pending"]
    assert quotes[2]["discount_percent"] == "2.50"
    r = client.get(f"/v1/deals/{deal['id']}/quotes/diff?from=1&to=2", headers=seller.headers)
    assert r.status_code == 200, r.text
    d = QuoteDiff.model_validate(r.json())
    fields = {c.field: c for c in d.changes}
    assert fields["unit_price"].percent_change == "8.89"
    assert fields["quantity"].old_value == 500
    assert fields["quantity"].new_value == 400
    assert fields["delivery_terms"].new_value == "FOB Jeddah"
    assert d.summary.startswith("Price increased 8.89%, quantity reduced from 500 to 400")
    same = client.get(f"/v1/deals/{deal['id']}/quotes/diff?from=2&to=2", headers=seller.headers)
    assert same.json()["summary"] == "No change"
    back = client.get(f"/v1/deals/{deal['id']}/quotes/diff?from=3&to=1", headers=seller.headers)
    assert back.status_code == 200
    assert back.json()["from_version"] == 3


BAD_DIFFS = [
    "from=1&to=9",
    "from=0&to=1",
    "from=4&to=1",
    "from=x&to=1",
    "to=1",
    "from=1",
    "",
    f"from={10**20}&to=1",
]


def test_quote_diff_refuses_unknown_versions(
    client: TestClient,
    people: dict[str, Person],
    offer_on_table: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    deal, _ = offer_on_table
    url = f"/v1/deals/{deal['id']}/quotes/diff"
    h = people["buyer"].headers
    wrong = {
        query: why
        for query in BAD_DIFFS
        if (why := refusal_of(client.get(f"{url}?{query}", headers=h), 422, "NEG-016"))
    }
    assert wrong == {}


def test_quote_diff_on_a_deal_without_quotes(client: TestClient, people: dict[str, Person]) -> None:
    listing = make_listing(client, people["seller"], process="rfq")
    deal = open_deal(client, people["buyer"], listing, transition="request-quote")
    assert client.get(f"/v1/deals/{deal['id']}/quotes", headers=people["buyer"].headers).json() == {
        "items": []
    }
    r = client.get(
        f"/v1/deals/{deal['id']}/quotes/diff?from=1&to=2", headers=people["buyer"].headers
    )
    assert "none yet" in problem(r, 422, "NEG-016")["detail"]
