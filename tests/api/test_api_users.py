"""Users: admins add them; /v1/me; public profiles with trust facts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from dealroom.clock import TestClock
from dealroom.db.models import User
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from factories import T0
from people import Person, add_user, make_listing, move

NEW_USER = {
    "email": "Nora@Parts.example",
    "name": "Nora Seller",
    "password": "a long enough password",
    "organization": "Parts Inc",
    "roles": ["operator"],
    "kyc_verified": True,
    "plan": "paid",
    "timezone": "Asia/Riyadh",
}


def admin(db: Database) -> Person:
    return add_user(db, T0, "admin@dealroom.example", roles=("admin",))


def test_admin_adds_a_user_who_can_then_sign_in(client: TestClient, db: Database) -> None:
    r = client.post("/v1/users", json=NEW_USER, headers=admin(db).headers)
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == "nora@parts.example"
    assert user["roles"] == ["operator"]
    assert user["plan"] == "paid"
    assert user["timezone"] == "Asia/Riyadh"
    assert user["kyc_verified"] is True
    assert user["created_at"] == "2026-02-01T09:00:00.000000Z"
    assert "password" not in user
    assert "password_hash" not in user
    token = client.post(
        "/v1/auth/token", json={"email": "nora@parts.example", "password": NEW_USER["password"]}
    )
    assert token.status_code == 200
    assert token.json()["user"]["id"] == user["id"]


def test_defaults_make_a_plain_free_user(client: TestClient, db: Database) -> None:
    body = {"email": "x@acme.example", "name": "X", "password": "12345678"}
    r = client.post("/v1/users", json=body, headers=admin(db).headers)
    assert r.status_code == 201
    assert r.json()["roles"] == []
    assert r.json()["plan"] == "free"
    assert r.json()["timezone"] == "UTC"
    assert r.json()["kyc_verified"] is False


def test_only_an_admin_adds_users(client: TestClient, db: Database) -> None:
    plain = add_user(db, T0, "plain@acme.example")
    operator = add_user(db, T0, "ops@dealroom.example", roles=("operator",))
    for person in (plain, operator):
        r = client.post("/v1/users", json=NEW_USER, headers=person.headers)
        assert r.status_code == 403
        assert r.json()["code"] == "NEG-008"
    assert client.post("/v1/users", json=NEW_USER).status_code == 401


def test_an_email_is_taken_once_whatever_its_case(client: TestClient, db: Database) -> None:
    headers = admin(db).headers
    assert client.post("/v1/users", json=NEW_USER, headers=headers).status_code == 201
    again = {**NEW_USER, "email": "NORA@parts.EXAMPLE"}
    r = client.post("/v1/users", json=again, headers=headers)
    assert r.status_code == 409
    assert r.json()["code"] == "NEG-014"
    assert r.json()["field"] == "email"


def test_user_validation_lists_every_bad_field(client: TestClient, db: Database) -> None:
    body = {
        "email": "not-an-email",
        "name": "",
        "password": "short",
        "roles": ["superuser"],
        "plan": "gold",
        "timezone": "Mars/Olympus",
        "kyc_verified": "yes",
        "nickname": "x",
    }
    r = client.post("/v1/users", json=body, headers=admin(db).headers)
    assert r.status_code == 422
    assert r.json()["code"] == "NEG-016"
    fields = {e["field"].split(".")[0] for e in r.json()["errors"]}
    assert fields == {
        "email", "name", "password", "roles", "plan", "timezone", "kyc_verified", "nickname",
    }  # fmt: skip


def test_a_retried_create_with_the_same_key_adds_one_user(client: TestClient, db: Database) -> None:
    headers = {**admin(db).headers, "Idempotency-Key": "add-nora-1"}
    first = client.post("/v1/users", json=NEW_USER, headers=headers)
    second = client.post("/v1/users", json=NEW_USER, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    with session_scope(db) as s:
        n = s.execute(select(func.count()).select_from(User)).scalar_one()
    assert n == 2  # the admin and Nora


def test_me_is_the_callers_own_account(client: TestClient, db: Database) -> None:
    person = add_user(db, T0, "amal@acme.example", organization="Acme Corp", roles=("operator",))
    r = client.get("/v1/me", headers=person.headers)
    assert r.status_code == 200
    assert r.json()["id"] == person.id
    assert r.json()["email"] == "amal@acme.example"
    assert r.json()["roles"] == ["operator"]


def test_public_profile_shows_no_email_or_secrets(client: TestClient, db: Database) -> None:
    viewer = add_user(db, T0, "viewer@acme.example")
    other = add_user(db, T0, "nora@parts.example", organization="Parts Inc", age_days=400)
    r = client.get(f"/v1/users/{other.id}", headers=viewer.headers)
    assert r.status_code == 200
    profile = r.json()
    assert set(profile) == {"id", "name", "organization", "kyc_verified", "created_at", "trust"}
    assert profile["organization"] == "Parts Inc"
    assert profile["trust"] == {
        "member_since": profile["created_at"][:10],
        "account_age_days": 400,
        "kyc_verified": profile["kyc_verified"],
        "deals_closed": 0,
        "deals_ended": 0,
        "completion_rate": None,
        "median_response_seconds": None,
        "responses": 0,
        "responses_within_sla": None,
        "reviews_average": None,
        "reviews_count": 0,
    }
    assert "nora@parts.example" not in r.text


def test_public_profile_needs_a_signed_in_caller(client: TestClient, db: Database) -> None:
    other = add_user(db, T0, "nora@parts.example")
    assert client.get(f"/v1/users/{other.id}").status_code == 401


def test_unknown_or_deleted_users_are_not_found(client: TestClient, db: Database) -> None:
    viewer = add_user(db, T0, "viewer@acme.example")
    gone = add_user(db, T0, "gone@acme.example")
    with session_scope(db) as s:
        s.execute(update(User).where(User.id == gone.id).values(deleted_at=T0))
    for user_id in (gone.id, "00000000-0000-0000-0000-000000000000", "x" * 300):
        r = client.get(f"/v1/users/{user_id}", headers=viewer.headers)
        assert r.status_code == 404
        assert r.json()["code"] == "NEG-011"


def _deal(client: TestClient, buyer: Person, listing: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        "/v1/deals",
        json={
            "listing_id": listing["id"],
            "transition": "request-quote",
            "terms": {"quantity": 500},
            "message": "Need these for Q2",
        },
        headers=buyer.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_trust_profile_counts_closed_deals_and_answer_times(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    buyer = add_user(db, T0, "amal@acme.example")
    seller = add_user(db, T0, "nora@parts.example", age_days=30)
    listing = make_listing(client, seller, process="rfq")
    quote = {"terms": {"unit_price": "48.00", "quantity": 500, "lead_time_days": 5}}

    won = _deal(client, buyer, listing)
    clock.advance(hours=1)
    won = move(client, seller, won, "send-quote", **quote)  # answered in 1 h
    clock.advance(hours=2)
    move(client, buyer, won, "accept")  # an order: closed

    lost = _deal(client, buyer, listing)
    clock.advance(hours=3)
    lost = move(client, seller, lost, "send-quote", **quote)  # answered in 3 h
    clock.advance(hours=1)
    move(client, buyer, lost, "reject", reason="Too expensive")  # ended without an order

    _deal(client, buyer, listing)  # still open: neither closed nor ended

    trust = client.get(f"/v1/users/{seller.id}", headers=buyer.headers).json()["trust"]
    assert trust["account_age_days"] == 30
    assert trust["deals_closed"] == 1
    assert trust["deals_ended"] == 2
    assert trust["completion_rate"] == 0.5
    assert trust["median_response_seconds"] == 2 * 3600  # median of 1 h and 3 h
    assert trust["responses"] == 2
