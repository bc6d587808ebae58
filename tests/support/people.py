"""Plain factory functions for HTTP tests: users with tokens, auth headers, listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dealroom.db.models import Base, User
from dealroom.db.session import Database
from dealroom.security import hash_password, issue_token
from dealroom.services.uow import session_scope

PASSWORD = "correct horse battery"
#: HS256 wants a key of at least 32 bytes.
TEST_SECRET = "dealroom-test-signing-key-32-bytes-or-more"
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose; hash once for all test users


@dataclass
class Person:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_user(
    db: Database,
    now: datetime,
    email: str,
    *,
    name: str | None = None,
    organization: str | None = None,
    roles: tuple[str, ...] = (),
    kyc_verified: bool = True,
    plan: str = "paid",
    age_days: int = 365,
    secret: str = TEST_SECRET,
) -> Person:
    with session_scope(db) as s:
        user = User(
            email=email.lower(),
            name=name or email.split("@")[0].title(),
            organization=organization,
            password_hash=_HASH,
            roles=list(roles),
            kyc_verified=kyc_verified,
            plan=plan,
            timezone="UTC",
            created_at=now - timedelta(days=age_days),
        )
        s.add(user)
        s.flush()
        uid = user.id
    token, _ = issue_token(secret, uid, now=now, ttl_seconds=12 * 3600)
    return Person(uid, email.lower(), token)


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


def table_counts(db: Database) -> dict[str, int]:
    with session_scope(db, write=False) as s:
        return {
            t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }
