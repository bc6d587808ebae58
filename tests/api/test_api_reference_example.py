"""The rfq reference's worked example (sections 2.4 and 4.2, RFQ-2026-0042) through the
HTTP API, at the reference's own timestamps: the events, the quote versions, the diff, the
order, and the hash chain that proves it, including what tampering does to it."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dealroom.clock import TestClock
from dealroom.db.models import Event
from dealroom.db.session import Database
from dealroom.security import issue_token
from dealroom.services.uow import session_scope
from factories import REFERENCE_EVENTS
from people import TEST_SECRET, Person, add_user, make_listing, move

EXPECTED_TYPES = list(REFERENCE_EVENTS)


def for_a_week(person: Person, now: datetime) -> Person:
    """The timeline spans two days; a 12-hour token would lapse on the way."""
    token, _ = issue_token(TEST_SECRET, person.id, now=now, ttl_seconds=7 * 86400)
    return Person(person.id, person.email, token)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def example(
    client: TestClient, db: Database, clock: TestClock
) -> tuple[dict[str, Any], Person, Person]:
    """Play the timeline of section 4.2; answer the accepted deal, buyer and seller."""
    clock.set(at(1, 8))
    buyer = add_user(db, clock.now(), "procurement@acme.example", organization="Acme Corp")
    seller = add_user(db, clock.now(), "sales@parts.example", organization="Parts Inc")
    buyer, seller = for_a_week(buyer, clock.now()), for_a_week(seller, clock.now())
    listing = make_listing(client, seller, title="Hydraulic pump HP-200")

    clock.set(at(1, 9))
    r = client.post(
        "/v1/deals",
        json={
            "listing_id": listing["id"],
            "process": "rfq",
            "transition": "request-quote",
            "terms": {"quantity": 1000},
            "message": "Need for Q2 production",
        },
        headers=buyer.headers,
    )
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["state"] == "quote-requested"

    clock.set(at(1, 14, 15))
    deal = move(
        client,
        seller,
        deal,
        "send-quote",
        terms={
            "unit_price": "50.00",
            "quantity": 1000,
            "lead_time_days": 7,
            "valid_until": "2026-02-08T14:15:00Z",
        },
    )
    clock.set(at(2, 9))
    deal = move(
        client,
        buyer,
        deal,
        "counter",
        terms={"unit_price": "45.00"},
        message="Volume discount expected for this quantity",
    )
    clock.set(at(2, 14))
    deal = move(
        client,
        seller,
        deal,
        "counter",
        terms={"unit_price": "47.00", "lead_time_days": 5},
        message="Best price with expedited delivery",
    )
    clock.set(at(2, 15))
    deal = move(client, buyer, deal, "accept", reason="Terms acceptable")
    return deal, buyer, seller


def events_of(client: TestClient, who: Person, deal_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/deals/{deal_id}/events", headers=who.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_reference_timeline_records_the_reference_events_in_order(
    client: TestClient, example: tuple[dict[str, Any], Person, Person]
) -> None:
    deal, buyer, _ = example
    events = events_of(client, buyer, deal["id"])
    assert [e["type"] for e in events] == EXPECTED_TYPES
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["created_at"][:19] for e in events] == [
        "2026-02-01T09:00:00",
        "2026-02-01T14:15:00",
        "2026-02-02T09:00:00",
        "2026-02-02T14:00:00",
        "2026-02-02T15:00:00",
        "2026-02-02T15:00:00",
    ]
    assert [e["actor_type"] for e in events] == [
        "buyer", "seller", "buyer", "seller", "buyer", "system",
    ]  # fmt: skip
    assert events[0]["payload"]["request"]["quantity"] == 1000
    assert events[0]["payload"]["message"] == "Need for Q2 production"
    revised = events[3]["payload"]
    assert revised["version"] == 3
    assert revised["terms"]["unit_price"] == "47.00"
    assert revised["price_change_pct"] == "-6.00"
    assert revised["lead_time_change_days"] == -2
    assert events[4]["payload"]["reason"] == "Terms acceptable"
    order = events[5]["payload"]
    assert order["total"] == "47000.00"
    assert re.fullmatch(r"ORD-2026-\d{4}", order["order_ref"])
    # Each event links to the one before it.
    assert events[0]["prev_hash"] == "0" * 64
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]


def test_reference_deal_is_accepted_with_the_order_of_the_accepted_terms(
    client: TestClient, example: tuple[dict[str, Any], Person, Person]
) -> None:
    deal, buyer, _ = example
    assert deal["state"] == "accepted"
    accepted = deal["accepted_quote"]
    assert accepted["version"] == 3
    assert accepted["created_by_role"] == "seller"
    assert accepted["unit_price"] == "47.00"
    assert accepted["quantity"] == 1000
    assert accepted["total_price"] == "47000.00"
    assert accepted["currency"] == "SAR"
    assert accepted["lead_time_days"] == 5
    assert accepted["price_change_pct"] == "-6.00"
    assert accepted["lead_time_change_days"] == -2
    assert accepted["status"] == "accepted"
    assert deal["buyer"]["organization"] == "Acme Corp"
    assert deal["seller"]["organization"] == "Parts Inc"
    handoff = deal["handoff"]
    assert re.fullmatch(r"ORD-2026-\d{4}", handoff["order_ref"])
    assert handoff["total"] == "47000.00"
    assert handoff["currency"] == "SAR"
    assert handoff["fees"], "fees are listed beside the total"
    assert all(f["amount"] != handoff["total"] for f in handoff["fees"])
    assert deal["available_transitions"] == []
    # A reload answers the same deal.
    again = client.get(f"/v1/deals/{deal['id']}", headers=buyer.headers).json()
    assert again["handoff"]["order_ref"] == handoff["order_ref"]
    assert again["version"] == deal["version"] == 5


def test_reference_quote_versions_and_their_diff(
    client: TestClient, example: tuple[dict[str, Any], Person, Person]
) -> None:
    deal, buyer, _ = example
    r = client.get(f"/v1/deals/{deal['id']}/quotes", headers=buyer.headers)
    assert r.status_code == 200
    quotes = r.json()["items"]
    assert [(q["version"], q["created_by_role"], q["unit_price"], q["status"]) for q in quotes] == [
        (1, "seller", "50.00", "countered"),
        (2, "buyer", "45.00", "countered"),
        (3, "seller", "47.00", "accepted"),
    ]
    assert quotes[1]["message"] == "Volume discount expected for this quantity"
    assert quotes[0]["valid_until"].startswith("2026-02-08T14:15")

    r = client.get(f"/v1/deals/{deal['id']}/quotes/diff?from=1&to=3", headers=buyer.headers)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["from_version"] == 1
    assert d["to_version"] == 3
    assert d["summary"] == "Price reduced 6%, lead time reduced 2 days"
    changes = {c["field"]: c for c in d["changes"]}
    assert changes["unit_price"] == {
        "field": "unit_price",
        "old_value": "50.00",
        "new_value": "47.00",
        "percent_change": "-6.00",
    }
    assert changes["lead_time_days"]["old_value"] == 7
    assert changes["lead_time_days"]["new_value"] == 5
    assert changes["total_price"]["new_value"] == "47000.00"


def test_reference_audit_chain_verifies_and_tampering_is_found_at_its_seq(
    client: TestClient, db: Database, example: tuple[dict[str, Any], Person, Person]
) -> None:
    deal, buyer, seller = example
    r = client.get(f"/v1/deals/{deal['id']}/audit/verify", headers=seller.headers)
    assert r.status_code == 200
    good = r.json()
    assert good["valid"] is True
    assert good["events"] == 6
    assert good["first_bad_seq"] is None
    assert good["head_hash"] == events_of(client, buyer, deal["id"])[-1]["hash"]

    # Someone with database access softens the buyer's counter after the fact.
    with session_scope(db) as s:
        payload = s.execute(
            select(Event.payload).where(Event.deal_id == deal["id"], Event.seq == 3)
        ).scalar_one()
        forged = {**payload, "message": "We accept any price"}
        s.execute(
            update(Event).where(Event.deal_id == deal["id"], Event.seq == 3).values(payload=forged)
        )
    bad = client.get(f"/v1/deals/{deal['id']}/audit/verify", headers=seller.headers).json()
    assert bad["valid"] is False
    assert bad["first_bad_seq"] == 3
    assert bad["events"] == 3


def test_reference_audit_exports_hold_every_event(
    client: TestClient, example: tuple[dict[str, Any], Person, Person]
) -> None:
    deal, buyer, _ = example
    events = events_of(client, buyer, deal["id"])

    r = client.get(f"/v1/deals/{deal['id']}/audit/export?format=csv", headers=buyer.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == f'attachment; filename="{deal["ref"]}-audit.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["type"] for row in rows] == EXPECTED_TYPES
    assert [row["hash"] for row in rows] == [e["hash"] for e in events]
    assert json.loads(rows[5]["payload"])["total"] == "47000.00"

    r = client.get(f"/v1/deals/{deal['id']}/audit/export?format=json", headers=buyer.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == f'attachment; filename="{deal["ref"]}-audit.json"'
    doc = r.json()
    assert doc["ref"] == deal["ref"]
    assert doc["exported_verification"]["valid"] is True
    assert [e["type"] for e in doc["events"]] == EXPECTED_TYPES
    assert [e["hash"] for e in doc["events"]] == [e["hash"] for e in events]
