"""Security. The authorization matrix of tests/api/test_api_authz.py extended to every route
of the app (anonymous, outsider, buyer, seller, operator, admin); expired, forged and
orphaned tokens; a tampered event row caught at its exact sequence."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from proveworld import T0, World
from sqlalchemy import delete, select, update

from dealroom.db import models as m
from dealroom.security import issue_token
from dealroom.services.audit.chain import verify_deal
from dealroom.services.uow import session_scope
from people import TEST_SECRET, add_user

EDN = (
    "{:format :v3\n :transitions\n [{:name :transition/request\n   :actor :actor.role/customer"
    "\n   :actions []\n   :to :state/requested}]\n :notifications []}"
)
ROLES = ("anonymous", "outsider", "buyer", "seller", "operator", "admin")


@dataclass(frozen=True)
class Row:
    expect: dict[str, int]
    path: Callable[[dict[str, Any]], str]
    body: Callable[[dict[str, Any]], Any] | None = None


def users(ok: int) -> dict[str, int]:
    return {"anonymous": 401, **dict.fromkeys(ROLES[1:], ok)}


def everyone(ok: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, ok)


def staff(ok: int, others: int = 403) -> dict[str, int]:
    return {"anonymous": 401, "outsider": others, "buyer": others, "seller": others,
            "operator": ok, "admin": ok}  # fmt: skip


#: Every route outside /v1/deals/{id} (those have their own matrix in tests/api). `ctx` holds
#: the ids of a listing (the seller's), the deal, the buyer and a webhook.
MATRIX: dict[tuple[str, str], Row] = {
    ("POST", "/v1/auth/token"): Row(everyone(401), lambda c: "/v1/auth/token",
                                    lambda c: {"email": "nobody@x.test", "password": "wrong password"}),
    ("POST", "/v1/users"): Row({**staff(201), "operator": 403}, lambda c: "/v1/users",
                               lambda c: {"email": f"new{c['n']}@x.test", "name": "New", "password": "long enough password"}),
    ("GET", "/v1/me"): Row(users(200), lambda c: "/v1/me"),
    ("GET", "/v1/users/{user_id}"): Row(users(200), lambda c: f"/v1/users/{c['buyer']}"),
    ("POST", "/v1/listings"): Row(users(201), lambda c: "/v1/listings",
                                  lambda c: {"title": "Pallets", "currency": "SAR", "unit_price": "5.00", "quantity": 10}),
    ("GET", "/v1/listings"): Row(everyone(200), lambda c: "/v1/listings"),
    ("GET", "/v1/listings/{listing_id}"): Row(everyone(200), lambda c: f"/v1/listings/{c['listing']}"),
    # Owner edits (API.md); admins may too, operators may not.
    ("PATCH", "/v1/listings/{listing_id}"): Row({**users(403), "seller": 200, "admin": 200},
                                                lambda c: f"/v1/listings/{c['listing']}", lambda c: {"description": "Edited"}),
    ("POST", "/v1/deals"): Row({**users(201), "seller": 403},  # SELF-DEAL
                               lambda c: "/v1/deals",
                               lambda c: {"listing_id": c["listing"], "transition": "request-quote", "terms": {"quantity": 10}}),
    ("GET", "/v1/deals"): Row(users(200), lambda c: "/v1/deals"),
    ("GET", "/v1/events"): Row(users(200), lambda c: "/v1/events?after=0"),
    ("GET", "/v1/me/notifications"): Row(users(200), lambda c: "/v1/me/notifications"),
    ("POST", "/v1/me/notifications/read"): Row(users(200), lambda c: "/v1/me/notifications/read", lambda c: {"all": True}),
    ("GET", "/v1/me/preferences"): Row(users(200), lambda c: "/v1/me/preferences"),
    ("PUT", "/v1/me/preferences"): Row(users(200), lambda c: "/v1/me/preferences", lambda c: {"email": "digest"}),
    ("POST", "/v1/webhooks"): Row(staff(201), lambda c: "/v1/webhooks",
                                  lambda c: {"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
    ("GET", "/v1/webhooks"): Row(staff(200), lambda c: "/v1/webhooks"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Row(staff(200), lambda c: f"/v1/webhooks/{c['webhook']}/deliveries"),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Row(staff(204), lambda c: f"/v1/webhooks/{c['webhook']}"),
    ("GET", "/v1/processes"): Row(users(200), lambda c: "/v1/processes"),
    ("GET", "/v1/processes/{name}"): Row(users(200), lambda c: "/v1/processes/rfq"),
    ("POST", "/v1/processes"): Row(staff(201), lambda c: "/v1/processes", lambda c: {"format": "edn", "name": f"quick-{c['n'].lower()}", "definition": EDN}),
    ("GET", "/healthz"): Row(everyone(200), lambda c: "/healthz"),
    ("GET", "/metrics"): Row(everyone(200), lambda c: "/metrics"),
}  # fmt: skip

#: Endless streams: only the refusal is probed. Web pages use cookie sessions, not bearer
#: tokens: only the anonymous cell (a redirect to /login or the page itself) is checked.
STREAMS = {("GET", "/v1/me/stream")}


def app_routes(world: World) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in iter_route_contexts(world.app.routes):
        path = str(route.path or "")
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and path.startswith(("/v1/", "/healthz", "/metrics")) \
                    and not path.startswith("/v1/deals/{"):  # fmt: skip
                out.add((str(method), path))
    return out


def test_every_api_route_has_a_row(world: World) -> None:
    assert app_routes(world) == set(MATRIX) | STREAMS


def test_authorization_matrix_for_every_route(world: World) -> None:
    deal = world.new_deal()
    wrong: list[str] = []
    for (method, template), row in sorted(MATRIX.items()):
        for n, role in enumerate(ROLES):
            ctx = {"listing": world.listing["id"], "deal": deal["id"], "buyer": world.buyer.id, "n": f"{n}{len(template)}{method}"}  # fmt: skip
            if template.startswith("/v1/webhooks/{"):
                hook = world.client.post("/v1/webhooks", headers=world.admin.headers, json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})  # fmt: skip
                ctx["webhook"] = hook.json()["id"]
            who = world.people()[role]
            headers = who.headers if who else {}
            kwargs = {"json": row.body(ctx)} if row.body else {}
            r = world.client.request(method, row.path(ctx), headers=headers, **kwargs)
            if r.status_code != row.expect[role]:
                wrong.append(f"{method} {template} as {role}: {r.status_code} (expected {row.expect[role]}) {r.text[:160]}")  # fmt: skip
            if r.status_code >= 400 and template not in ("/metrics",):
                assert r.headers["content-type"].startswith("application/problem+json"), (method, template, role)  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_stream_refuses_anonymous(world: World) -> None:
    assert world.client.get("/v1/me/stream").status_code == 401


# --- tokens ---------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bad_tokens(world: World) -> dict[str, str]:
    good = world.buyer.token
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = dict(claims, sub=world.admin.id)
    return {
        "expired": issue_token(TEST_SECRET, world.buyer.id, now=world.clock.now() - timedelta(days=2), ttl_seconds=60)[0],
        "wrong key": issue_token("another-signing-key-of-32-bytes-at-least", world.buyer.id, now=world.clock.now(), ttl_seconds=3600)[0],
        "alg none": _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode()) + ".",
        "tampered payload": f"{header}.{_b64(json.dumps(tampered).encode())}.{sig}",
        "signature stripped": f"{header}.{payload}.",
        "garbage": "not-a-token",
        "unknown user": issue_token(TEST_SECRET, "00000000-0000-4000-8000-000000000000", now=world.clock.now(), ttl_seconds=3600)[0],
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["expired", "wrong key", "alg none", "tampered payload", "signature stripped", "garbage", "unknown user"])  # fmt: skip
@pytest.mark.parametrize("path", ["/v1/me", "/v1/deals", "/v1/me/notifications"])
def test_bad_tokens_are_refused_with_401(world: World, kind: str, path: str) -> None:
    r = world.client.get(path, headers={"Authorization": f"Bearer {bad_tokens(world)[kind]}"})
    assert r.status_code == 401, (kind, r.status_code, r.text)
    assert r.json()["code"] == "NEG-012"


def test_token_of_a_deleted_user_is_refused(world: World) -> None:
    gone = add_user(world.db, T0, "gone@x.test")
    assert world.client.get("/v1/me", headers=gone.headers).status_code == 200
    with session_scope(world.db) as s:
        s.execute(delete(m.User).where(m.User.id == gone.id))
    assert world.client.get("/v1/me", headers=gone.headers).status_code == 401


# --- tampering with the audit trail ---------------------------------------------------------


@pytest.mark.parametrize("field", ["payload", "to_state", "actor_id", "created_at"])
def test_a_tampered_event_fails_verify_at_its_exact_sequence(world: World, field: str) -> None:
    deal = world.new_deal()
    for i in range(3):
        world.client.post(f"/v1/deals/{deal['id']}/messages", headers=world.buyer.headers, json={"body": f"m{i}"})  # fmt: skip
    target = 3
    with session_scope(world.db) as s:
        e = s.execute(select(m.Event).where(m.Event.deal_id == deal["id"], m.Event.seq == target)).scalar_one()  # fmt: skip
        new = {"payload": {**e.payload, "body": "rewritten"}, "to_state": "accepted",
               "actor_id": world.outsider.id, "created_at": e.created_at + timedelta(seconds=1)}[field]  # fmt: skip
        s.execute(update(m.Event).where(m.Event.id == e.id).values({field: new}))
    r = world.client.get(f"/v1/deals/{deal['id']}/audit/verify", headers=world.buyer.headers)
    assert r.status_code == 200
    assert r.json()["valid"] is False
    assert r.json()["first_bad_seq"] == target
    with world.db.session(write=False) as s:
        d = s.get(m.Deal, deal["id"])
        assert d is not None
        assert verify_deal(s, d).first_bad_seq == target
