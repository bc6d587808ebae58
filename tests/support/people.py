"""Plain factory functions for HTTP tests: users with tokens, auth headers, listings, deals
opened and moved over the API, and the refusals it answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dealroom.db.models import Base
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from dealroom_harness.people import PASSWORD, Person, add_person

__all__ = ["PASSWORD", "TEST_SECRET", "Person", "add_user"]

#: HS256 wants a key of at least 32 bytes.
TEST_SECRET = "dealroom-test-signing-key-32-bytes-or-more"


def add_user(
    db: Database, now: datetime, email: str, *, secret: str = TEST_SECRET, **options: Any
) -> Person:
    """A user with a token signed with the tests' key, valid from `now` (the options of
    `dealroom_harness.people.add_person`: name, organization, roles, kyc_verified, plan,
    age_days)."""
    return add_person(db, email, secret=secret, now=now, **options)


def make_listing(client: TestClient, owner: Person, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "Dell Latitude 7420 laptops, grade A",
        "currency": "SAR",
        "unit_price": "50.00",
        "quantity": 1000,
        "category": "laptops",
        **fields,
    }
    r = client.post("/v1/listings", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


OFFER_MESSAGE = (
    "We would like to buy at this price; financing is arranged and we can close in 30 days."
)
OFFER_FIELDS = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}


def open_deal(client: TestClient, who: Person, listing: dict[str, Any], **body: Any) -> Any:
    r = client.post("/v1/deals", json={"listing_id": listing["id"], **body}, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


def offer(client: TestClient, who: Person, listing_id: str) -> Any:
    """A buyer's opening offer on a market listing, 45.00 for 100; the answer as it came."""
    return client.post(
        "/v1/deals",
        json={
            "listing_id": listing_id,
            "transition": "make-offer",
            "terms": {"unit_price": "45.00", "quantity": 100},
            "message": "Opening offer",
        },
        headers=who.headers,
    )


def move(
    client: TestClient, who: Person, deal: dict[str, Any], name: str, **body: Any
) -> dict[str, Any]:
    """Fire transition `name` of `deal` (at its version) as `who`; answers the moved deal."""
    r = client.post(
        f"/v1/deals/{deal['id']}/transitions",
        json={"name": name, "expected_version": deal["version"], **body},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def refusal_of(r: Any, status: int, code: str) -> str | None:
    """What is wrong with the answer to a bad request, or None if it is the right refusal."""
    if r.status_code != status:
        return f"status {r.status_code}, not {status}: {r.text[:200]}"
    if not r.headers["content-type"].startswith("application/problem+json"):
        return f"content-type {r.headers['content-type']}"
    if r.json().get("code") != code:
        return f"code {r.json().get('code')}, not {code}"
    if len(r.content) > 20_000:
        return "the refusal echoes the huge input"
    return None


def table_counts(db: Database) -> dict[str, int]:
    with session_scope(db, write=False) as s:
        return {
            t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }
