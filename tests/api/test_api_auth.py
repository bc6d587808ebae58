"""POST /v1/auth/token and the bearer token on later requests."""

from __future__ import annotations

from datetime import timedelta

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import update

from dealroom.clock import TestClock
from dealroom.db.models import User
from dealroom.db.session import Database
from dealroom.security import issue_token
from dealroom.services.uow import session_scope
from factories import T0
from people import PASSWORD, TEST_SECRET, add_user, make_listing, open_deal, table_counts


def sign_in(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/v1/auth/token", json={"email": email, "password": password})


def test_right_credentials_get_a_bearer_token_that_opens_the_api(
    client: TestClient, db: Database
) -> None:
    buyer = add_user(db, T0, "amal@acme.example", organization="Acme Corp")
    r = sign_in(client, "amal@acme.example")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_at"] == "2026-02-01T21:00:00.000000Z"  # 12 hours
    assert body["user"]["id"] == buyer.id
    assert body["user"]["organization"] == "Acme Corp"
    assert "password_hash" not in body["user"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "amal@acme.example"


def test_email_is_matched_without_regard_to_case_or_spaces(
    client: TestClient, db: Database
) -> None:
    add_user(db, T0, "amal@acme.example")
    assert sign_in(client, "  Amal@ACME.example ").status_code == 200


def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: TestClient, db: Database
) -> None:
    add_user(db, T0, "amal@acme.example")
    unknown = sign_in(client, "nobody@acme.example")
    wrong = sign_in(client, "amal@acme.example", "not the password")
    for r in (unknown, wrong):
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "NEG-012"
    assert unknown.json()["detail"] == wrong.json()["detail"]


def test_blocked_user_is_refused_a_token(client: TestClient, db: Database) -> None:
    person = add_user(db, T0, "blocked@acme.example")
    with session_scope(db) as s:
        s.execute(update(User).where(User.id == person.id).values(blocked=True))
    r = sign_in(client, "blocked@acme.example")
    assert r.status_code == 403
    assert r.json()["code"] == "NEG-009"
    # A guess at the password of a blocked account learns nothing more than for any other.
    assert sign_in(client, "blocked@acme.example", "guess guess").status_code == 401


def test_deleted_user_is_refused_a_token_as_if_unknown(client: TestClient, db: Database) -> None:
    person = add_user(db, T0, "gone@acme.example")
    with session_scope(db) as s:
        s.execute(update(User).where(User.id == person.id).values(deleted_at=T0))
    r = sign_in(client, "gone@acme.example")
    assert r.status_code == 401
    assert r.json()["code"] == "NEG-012"


def test_token_expires_after_twelve_hours(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    add_user(db, T0, "amal@acme.example")
    token = sign_in(client, "amal@acme.example").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    clock.advance(hours=11, minutes=59)
    assert client.get("/v1/me", headers=headers).status_code == 200
    clock.advance(minutes=2)
    r = client.get("/v1/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "NEG-012"
    assert "expired" in r.json()["detail"]


def test_forged_token_is_refused(client: TestClient, db: Database) -> None:
    person = add_user(db, T0, "amal@acme.example")
    forged, _ = issue_token(
        "someone-elses-key-that-is-long-enough-32", person.id, now=T0, ttl_seconds=3600
    )
    unsigned = jwt.encode({"sub": person.id, "iat": 0, "exp": 2**40}, key="", algorithm="none")
    for token in (forged, unsigned, "not-a-token", person.token + "x"):
        r = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.json()["code"] == "NEG-012"


def test_token_of_a_deleted_user_stops_working(client: TestClient, db: Database) -> None:
    person = add_user(db, T0, "amal@acme.example")
    assert client.get("/v1/me", headers=person.headers).status_code == 200
    with session_scope(db) as s:
        s.execute(update(User).where(User.id == person.id).values(deleted_at=T0))
    r = client.get("/v1/me", headers=person.headers)
    assert r.status_code == 401
    assert r.json()["code"] == "NEG-012"


def test_a_request_without_a_token_is_asked_to_sign_in(client: TestClient) -> None:
    r = client.get("/v1/me")
    assert r.status_code == 401
    assert r.json()["code"] == "NEG-012"
    assert "/v1/auth/token" in r.json()["detail"]


def test_token_request_validation_lists_every_field(client: TestClient) -> None:
    r = client.post("/v1/auth/token", json={"emial": "x@y.example"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"email", "password", "emial"} <= fields


def test_huge_credentials_are_refused_as_invalid_not_crashed(client: TestClient) -> None:
    r = client.post("/v1/auth/token", json={"email": "a" * 100_000, "password": "p" * 100_000})
    assert r.status_code == 422
    assert r.json()["code"] == "NEG-016"


def test_token_of_a_user_issued_before_the_account_existed_is_refused(
    client: TestClient, db: Database
) -> None:
    # An id reused for a new account must not accept a token minted for the old one.
    person = add_user(db, T0, "amal@acme.example", age_days=0)
    old, _ = issue_token(
        TEST_SECRET,
        person.id,
        now=T0 - timedelta(days=1),
        ttl_seconds=3 * 86400,
    )
    r = client.get("/v1/me", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401


def test_a_party_whose_account_is_gone_cannot_move_their_deal(
    client: TestClient, db: Database
) -> None:
    """A move reads the caller's row with the deal (deals.fire_transition_as): the checks
    of every other route still hold, and a missing deal does not come before them."""
    seller = add_user(db, T0, "nora@parts.example")
    buyer = add_user(db, T0, "amal@acme.example")
    listing = make_listing(client, seller)
    deal = open_deal(client, buyer, listing, transition="make-offer",
                     terms={"unit_price": "45.00", "quantity": 100})  # fmt: skip
    before = table_counts(db)
    with session_scope(db) as s:
        s.execute(update(User).where(User.id == seller.id).values(deleted_at=T0))
    for deal_id in (deal["id"], "00000000-0000-4000-8000-000000000000"):
        r = client.post(f"/v1/deals/{deal_id}/transitions",
                        json={"name": "accept", "expected_version": deal["version"]},
                        headers=seller.headers)  # fmt: skip
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "NEG-012"
    assert table_counts(db) == before
    r = client.post("/v1/deals/00000000-0000-4000-8000-000000000000/transitions",
                    json={"name": "accept", "expected_version": 1}, headers=buyer.headers)  # fmt: skip
    assert r.status_code == 404
