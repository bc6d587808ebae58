"""Real concurrency on one deal (PostgreSQL): many threads fire at the same version at the
same moment. Exactly one wins; the rest get 409 NEG-004; one order, no duplicate events,
and the hash chain still holds (rfq reference 8.2: first submitted wins)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dbsupport import PG_URL
from dealroom.clock import TestClock
from dealroom.db.models import Event, Order, QuoteVersion
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from people import Person, add_user, make_listing
from races import race

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL,
        reason="real concurrent writers need PostgreSQL: set DEALROOM_TEST_DATABASE_URL",
    ),
]

THREADS = 16


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[Person, Person]:
    return (
        add_user(db, clock.now(), "buyer@acme.example"),
        add_user(db, clock.now(), "seller@parts.example"),
    )


@pytest.fixture
def quoted(client: TestClient, parties: tuple[Person, Person]) -> dict[str, Any]:
    """An rfq deal with the seller's quote pending for the buyer."""
    buyer, seller = parties
    listing = make_listing(client, seller, process="rfq")
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "request-quote",
              "terms": {"quantity": 1000}},
        headers=buyer.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post(
        f"/v1/deals/{r.json()['id']}/transitions",
        json={"name": "send-quote", "expected_version": 1,
              "terms": {"unit_price": "50.00", "lead_time_days": 7}},
        headers=seller.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def assert_chain_is_whole(client: TestClient, db: Database, who: Person, deal_id: str) -> None:
    verify = client.get(f"/v1/deals/{deal_id}/audit/verify", headers=who.headers).json()
    assert verify["valid"] is True, verify
    with session_scope(db, write=False) as s:
        seqs = list(s.scalars(select(Event.seq).where(Event.deal_id == deal_id)))
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), "gaps or duplicates in the chain"
    assert verify["events"] == len(seqs)


def test_sixteen_simultaneous_accepts_make_exactly_one_order(
    client: TestClient, db: Database, parties: tuple[Person, Person], quoted: dict[str, Any]
) -> None:
    buyer, _ = parties
    url = f"/v1/deals/{quoted['id']}/transitions"
    body = {"name": "accept", "expected_version": quoted["version"]}

    def accept() -> Any:
        return client.post(url, json=body, headers=buyer.headers)

    responses = race([accept] * THREADS)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: THREADS - 1}, [getattr(r, "text", r) for r in responses]
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {p["code"] for p in refused} == {"NEG-004"}
    assert {p["current_version"] for p in refused} == {quoted["version"] + 1}

    with session_scope(db, write=False) as s:
        orders = s.execute(
            select(func.count()).select_from(Order).where(Order.deal_id == quoted["id"])
        ).scalar_one()
        types = list(
            s.scalars(select(Event.type).where(Event.deal_id == quoted["id"]).order_by(Event.seq))
        )
    assert orders == 1
    assert types == ["RFQ_CREATED", "QUOTE_SENT", "QUOTE_ACCEPTED", "ORDER_CREATED"]
    assert_chain_is_whole(client, db, buyer, quoted["id"])
    deal = client.get(f"/v1/deals/{quoted['id']}", headers=buyer.headers).json()
    assert deal["state"] == "accepted"
    assert deal["version"] == quoted["version"] + 1


def test_simultaneous_counters_from_both_sides_make_one_new_version(
    client: TestClient, db: Database, parties: tuple[Person, Person], quoted: dict[str, Any]
) -> None:
    buyer, seller = parties
    url = f"/v1/deals/{quoted['id']}/transitions"
    version = quoted["version"]

    def buyer_counter(i: int) -> Callable[[], Any]:
        body = {"name": "counter", "expected_version": version,
                "terms": {"unit_price": f"{45 + i / 100:.2f}"}, "message": f"Counter {i}"}  # fmt: skip
        return lambda: client.post(url, json=body, headers=buyer.headers)

    def seller_revision(i: int) -> Callable[[], Any]:
        body = {"name": "revise-quote", "expected_version": version,
                "terms": {"unit_price": f"{49 - i / 100:.2f}"}, "message": f"Revision {i}"}  # fmt: skip
        return lambda: client.post(url, json=body, headers=seller.headers)

    calls = [buyer_counter(i) if i % 2 else seller_revision(i) for i in range(THREADS)]
    responses = race(calls)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: THREADS - 1}, [getattr(r, "text", r) for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"NEG-004"}

    with session_scope(db, write=False) as s:
        numbers = list(
            s.scalars(
                select(QuoteVersion.number)
                .where(QuoteVersion.deal_id == quoted["id"])
                .order_by(QuoteVersion.number)
            )
        )
    assert numbers == [1, 2]
    assert_chain_is_whole(client, db, buyer, quoted["id"])
    deal = client.get(f"/v1/deals/{quoted['id']}", headers=buyer.headers).json()
    assert deal["version"] == version + 1
    assert deal["current_quote"]["version"] == 2


def test_one_idempotency_key_retried_concurrently_runs_once(
    client: TestClient, db: Database, parties: tuple[Person, Person], quoted: dict[str, Any]
) -> None:
    buyer, _ = parties
    url = f"/v1/deals/{quoted['id']}/transitions"
    body = {"name": "accept", "expected_version": quoted["version"]}
    headers = {**buyer.headers, "Idempotency-Key": "accept-once"}

    responses = race([lambda: client.post(url, json=body, headers=headers)] * 8)
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
    with session_scope(db, write=False) as s:
        orders = s.execute(
            select(func.count()).select_from(Order).where(Order.deal_id == quoted["id"])
        ).scalar_one()
    assert orders == 1
    assert_chain_is_whole(client, db, buyer, quoted["id"])
