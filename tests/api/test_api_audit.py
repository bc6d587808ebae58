"""The audit trail over HTTP: GET /v1/deals/{id}/events?after=, the hash-chain check
(/audit/verify) and the exports (/audit/export?format=json|csv, PDF not yet)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from dealroom.api.schemas import AuditVerification, EventPage
from dealroom.clock import TestClock
from dealroom.db.models import Deal, Event
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from people import Person, make_listing


@pytest.fixture
def deal(client: TestClient, clock: TestClock, people: dict[str, Person]) -> dict[str, Any]:
    """A market deal with five events: offer, two messages, a counter and a message."""
    listing = make_listing(client, people["seller"])
    buyer, seller = people["buyer"], people["seller"]
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "make-offer",
              "terms": {"unit_price": "45.00", "quantity": 500}},
        headers=buyer.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    d = r.json()
    for who, text in ((buyer, "Hello"), (seller, "Hi, one moment")):
        clock.advance(minutes=5)
        r = client.post(f"/v1/deals/{d['id']}/messages", json={"body": text}, headers=who.headers)
        assert r.status_code == 201
    clock.advance(minutes=5)
    r = client.post(
        f"/v1/deals/{d['id']}/transitions",
        json={"name": "counter", "expected_version": 1, "terms": {"unit_price": "48.00"},
              "message": "Best we can do"},
        headers=seller.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    clock.advance(minutes=5)
    r = client.post(f"/v1/deals/{d['id']}/messages", json={"body": "ok"}, headers=buyer.headers)
    assert r.status_code == 201
    return dict(r.json() and client.get(f"/v1/deals/{d['id']}", headers=buyer.headers).json())


TYPES = ["OFFER_MADE", "MESSAGE_POSTED", "MESSAGE_POSTED", "COUNTER_SUBMITTED", "MESSAGE_POSTED"]


def test_events_read_in_order_and_resume_after_a_sequence(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    url = f"/v1/deals/{deal['id']}/events"
    h = people["buyer"].headers
    page = client.get(url, headers=h).json()
    EventPage.model_validate(page)
    assert [e["type"] for e in page["items"]] == TYPES
    assert [e["seq"] for e in page["items"]] == [1, 2, 3, 4, 5]
    assert page["next_after"] == 5
    assert page["has_more"] is False
    first = page["items"][0]
    assert set(first) >= {
        "seq", "type", "deal_id", "actor_id", "actor_type", "from_state", "to_state",
        "payload", "created_at", "prev_hash", "hash",
    }  # fmt: skip
    assert first["actor_id"] == people["buyer"].id
    assert first["actor_type"] == "buyer"
    assert first["payload"]["terms"]["unit_price"] == "45.00"
    assert first["created_at"].endswith("Z")
    counter = page["items"][3]
    assert counter["actor_type"] == "seller"
    assert counter["payload"]["version"] == 2
    assert counter["payload"]["message"] == "Best we can do"
    assert page["items"][1]["payload"]["body"] == "Hello"

    after = client.get(f"{url}?after=3", headers=h).json()
    assert [e["seq"] for e in after["items"]] == [4, 5]
    paged = client.get(f"{url}?after=1&limit=2", headers=h).json()
    assert [e["seq"] for e in paged["items"]] == [2, 3]
    assert paged["has_more"] is True
    assert paged["next_after"] == 3
    tail = client.get(f"{url}?after=5", headers=h).json()
    assert tail == {"items": [], "next_after": 5, "has_more": False}
    # The operator and the seller read the same trail.
    for who in ("seller", "operator"):
        assert client.get(url, headers=people[who].headers).json() == page


def test_event_paging_refuses_bad_numbers(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    url = f"/v1/deals/{deal['id']}/events"
    for query in ("after=-1", "after=x", f"after={2**40}", "limit=0", "limit=1001", "limit=1.5"):
        r = client.get(f"{url}?{query}", headers=people["buyer"].headers)
        assert (r.status_code, r.json()["code"]) == (422, "NEG-016"), query


def test_verify_reports_a_sound_chain(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    for who in ("buyer", "seller", "operator"):
        r = client.get(f"/v1/deals/{deal['id']}/audit/verify", headers=people[who].headers)
        assert r.status_code == 200
        v = AuditVerification.model_validate(r.json())
        assert (v.valid, v.events, v.first_bad_seq) == (True, 5, None)
        assert v.head_hash is not None
        assert len(v.head_hash) == 64


def test_verify_finds_a_rewritten_hash_a_removed_event_and_a_cut_tail(
    client: TestClient, db: Database, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    url = f"/v1/deals/{deal['id']}/audit/verify"
    h = people["operator"].headers
    with session_scope(db) as s:
        # Rewriting the hash of event 2 as well as its payload breaks the link to 3.
        s.execute(
            update(Event)
            .where(Event.deal_id == deal["id"], Event.seq == 2)
            .values(payload={"body": "Goodbye"}, hash="f" * 64)
        )
    v = client.get(url, headers=h).json()
    assert (v["valid"], v["first_bad_seq"]) == (False, 2)

    with session_scope(db) as s:
        s.execute(delete(Event).where(Event.deal_id == deal["id"], Event.seq <= 2))
        s.execute(update(Event).where(Event.deal_id == deal["id"]).values(seq=Event.seq - 2))
    v = client.get(url, headers=h).json()
    assert v["valid"] is False
    assert v["first_bad_seq"] == 1  # event 1 no longer starts from the genesis hash

    with session_scope(db) as s:
        s.execute(delete(Event).where(Event.deal_id == deal["id"]))
        s.execute(update(Deal).where(Deal.id == deal["id"]).values(last_seq=0))
    v = client.get(url, headers=h).json()
    assert v["valid"] is False, "the deal row still names a head the events do not reach"


def test_verify_notices_events_cut_from_the_end(
    client: TestClient, db: Database, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    with session_scope(db) as s:
        s.execute(delete(Event).where(Event.deal_id == deal["id"], Event.seq == 5))
    v = client.get(f"/v1/deals/{deal['id']}/audit/verify", headers=people["buyer"].headers).json()
    assert v["valid"] is False
    assert v["first_bad_seq"] == 5


def test_exports_carry_every_event_with_a_named_attachment(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    h = people["operator"].headers
    events = client.get(f"/v1/deals/{deal['id']}/events", headers=h).json()["items"]
    r = client.get(f"/v1/deals/{deal['id']}/audit/export", headers=h)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{deal["ref"]}-audit.json"'
    doc = r.json()
    assert doc["deal_id"] == deal["id"]
    assert doc["exported_verification"]["valid"] is True
    assert [e["seq"] for e in doc["events"]] == [1, 2, 3, 4, 5]
    assert [e["hash"] for e in doc["events"]] == [e["hash"] for e in events]
    assert doc["events"][0]["user_agent"] == "testclient"

    r = client.get(f"/v1/deals/{deal['id']}/audit/export?format=csv", headers=h)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{deal["ref"]}-audit.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["type"] for row in rows] == TYPES
    assert [row["prev_hash"] for row in rows[1:]] == [row["hash"] for row in rows[:-1]]


def test_pdf_export_is_refused_plainly_not_faked(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    r = client.get(
        f"/v1/deals/{deal['id']}/audit/export?format=pdf", headers=people["buyer"].headers
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "NEG-016"
    assert body["field"] == "format"
    assert "PDF export is not available yet" in body["detail"]
    r = client.get(
        f"/v1/deals/{deal['id']}/audit/export?format=xlsx", headers=people["buyer"].headers
    )
    assert r.status_code == 422
    assert r.json()["code"] == "NEG-016"


def test_audit_routes_hide_the_deal_from_outsiders(
    client: TestClient, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    for path in ("events", "audit/verify", "audit/export", "audit/export?format=csv"):
        r = client.get(f"/v1/deals/{deal['id']}/{path}", headers=people["other"].headers)
        assert (r.status_code, r.json()["code"]) == (404, "NEG-011"), path
        assert client.get(f"/v1/deals/{deal['id']}/{path}").status_code == 401, path
        r = client.get(f"/v1/deals/no-such-deal/{path}", headers=people["operator"].headers)
        assert r.status_code == 404, path
