"""Who may do what to a deal, checked cell by cell for every route of the app under
/v1/deals/{id}: the matrix is generated from the route table, so a new route without a row
here fails until someone decides who may use it. Also checks that every deal route
documents its problem answers in the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from dealroom.app import create_app
from dealroom.config import Config
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from people import TEST_SECRET, Person, make_listing

ROLES = ("anonymous", "outsider", "seller", "operator", "buyer")
MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Row:
    """How to call a route, and what each caller gets. `body(deal)` builds the JSON body.
    Cells run in ROLES order, so a move that succeeds for one party comes last."""

    expect: dict[str, int]
    query: str = ""
    body: Callable[[dict[str, Any]], Any] | None = None
    writes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _everyone(ok: int) -> dict[str, int]:
    return {"anonymous": 401, "outsider": 404, "seller": ok, "operator": ok, "buyer": ok}


#: (method, path with the deal id as {id}) -> row. The deal has the seller's counter
#: (version 2) pending, so only the buyer may answer it.
MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/v1/deals/{id}"): Row(_everyone(200)),
    ("POST", "/v1/deals/{id}/transitions"): Row(
        # Not the seller's turn (CTR-004), operators do not accept for a party: 403 NEG-008.
        {"anonymous": 401, "outsider": 404, "seller": 403, "operator": 403, "buyer": 200},
        body=lambda d: {"name": "accept", "expected_version": d["version"]},
        writes=True,
    ),
    ("GET", "/v1/deals/{id}/quotes"): Row(_everyone(200)),
    ("GET", "/v1/deals/{id}/quotes/diff"): Row(_everyone(200), query="?from=1&to=2"),
    ("GET", "/v1/deals/{id}/messages"): Row(_everyone(200)),
    ("POST", "/v1/deals/{id}/messages"): Row(
        _everyone(201), body=lambda d: {"body": "Checking in."}, writes=True
    ),
    ("GET", "/v1/deals/{id}/events"): Row(_everyone(200), query="?after=0"),
    ("GET", "/v1/deals/{id}/audit/verify"): Row(_everyone(200)),
    ("GET", "/v1/deals/{id}/audit/export"): Row(_everyone(200), query="?format=csv"),
}

#: Routes that answer parties with an endless stream: only the refusals are probed.
STREAMS = {("GET", "/v1/deals/{id}/stream")}


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{id}", path)


def deal_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app that acts on one deal."""
    db = Database(create_engine("sqlite://"))
    app = create_app(Config(database_url="sqlite://", secret_key=TEST_SECRET), database=db)
    out = set()
    # Included routers are flattened here (FastAPI keeps them nested in app.routes).
    for route in iter_route_contexts(app.routes):
        if route.path and route.path.startswith("/v1/deals/{"):
            for method in (route.methods or set()) - {"HEAD", "OPTIONS"}:
                out.add((method, route.path))
    return sorted(out)


ROUTES = deal_routes()


@pytest.fixture
def people(people: dict[str, Person]) -> dict[str, Person]:
    """The app fixtures' buyer, seller and operator, and their `other` user as the outsider."""
    return {**people, "outsider": people["other"]}


@pytest.fixture
def deal(client: TestClient, people: dict[str, Person]) -> dict[str, Any]:
    listing = make_listing(client, people["seller"])
    r = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "make-offer",
              "terms": {"unit_price": "45.00", "quantity": 500}},
        headers=people["buyer"].headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post(
        f"/v1/deals/{r.json()['id']}/transitions",
        json={"name": "counter", "expected_version": 1, "terms": {"unit_price": "48.00"},
              "message": "Best we can do"},
        headers=people["seller"].headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_every_deal_route_has_a_row_in_the_matrix() -> None:
    assert ROUTES, "no deal routes found"
    missing = [
        (m, p) for m, p in ROUTES if (m, _template(p)) not in MATRIX | dict.fromkeys(STREAMS)
    ]
    assert not missing, f"decide who may use these routes and add rows: {missing}"


def _call(
    client: TestClient, method: str, path: str, row: Row, deal: dict[str, Any], who: Person | None
) -> Any:
    url = path.replace("{id}", deal["id"]) + row.query
    headers = who.headers if who else {}
    body = row.body(deal) if row.body else None
    return client.request(method, url, json=body, headers=headers)


def _state(client: TestClient, viewer: Person, deal_id: str) -> tuple[Any, Any]:
    h = viewer.headers
    return (
        client.get(f"/v1/deals/{deal_id}", headers=h).json(),
        client.get(f"/v1/deals/{deal_id}/events", headers=h).json(),
    )


@pytest.mark.parametrize(("method", "path"), [(m, _template(p)) for m, p in ROUTES])
def test_authorization_matrix(
    client: TestClient,
    people: dict[str, Person],
    deal: dict[str, Any],
    method: str,
    path: str,
) -> None:
    if (method, path) in STREAMS:
        row = Row({"anonymous": 401, "outsider": 404})
    else:
        row = MATRIX[(method, path)]
    seen: dict[str, int] = {}
    for role in ROLES:
        if role not in row.expect:
            continue
        before = _state(client, people["operator"], deal["id"])
        r = _call(client, method, path, row, deal, people.get(role))
        seen[role] = r.status_code
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
            assert r.json()["status"] == r.status_code
            # A refusal changes nothing, and says nothing about the deal to outsiders.
            assert _state(client, people["operator"], deal["id"]) == before, role
            if role == "outsider":
                assert deal["ref"] not in r.text
    assert seen == row.expect


@pytest.mark.parametrize(("method", "path"), [(m, _template(p)) for m, p in ROUTES])
def test_a_deal_that_does_not_exist_is_404_for_everyone(
    client: TestClient, people: dict[str, Person], method: str, path: str
) -> None:
    row = MATRIX.get((method, path)) or Row({})
    fake = {"id": MISSING, "version": 1, "ref": "-"}
    for who in ("buyer", "operator"):
        r = _call(client, method, path, row, fake, people[who])
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "NEG-011"


def test_collection_routes_need_a_caller(client: TestClient, people: dict[str, Person]) -> None:
    assert client.get("/v1/deals").status_code == 401
    r = client.post("/v1/deals", json={"listing_id": MISSING, "transition": "make-offer"})
    assert r.status_code == 401
    assert r.json()["code"] == "NEG-012"
    r = client.get("/v1/deals", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    # An outsider's list is empty, not an error.
    r = client.get("/v1/deals", headers=people["outsider"].headers)
    assert r.status_code == 200
    assert r.json()["items"] == []


def test_blocked_party_cannot_move(
    client: TestClient, db: Database, people: dict[str, Person], deal: dict[str, Any]
) -> None:
    from dealroom.db.models import User

    with session_scope(db) as s:
        user = s.get(User, people["buyer"].id)
        assert user is not None
        user.blocked = True
    r = client.post(
        f"/v1/deals/{deal['id']}/transitions",
        json={"name": "accept", "expected_version": deal["version"]},
        headers=people["buyer"].headers,
    )
    assert r.status_code == 403
    assert r.json()["code"] == "NEG-009"


# --- the OpenAPI document -----------------------------------------------------------------


def test_deal_routes_document_their_answers(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ops = {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        if path.startswith("/v1/deals")
        for method, op in item.items()
        if (method.upper(), _template(path)) not in STREAMS
    }
    assert len(ops) >= 11
    for (method, path), op in ops.items():
        where = f"{method} {path}"
        assert op.get("summary"), where
        assert "deals" in op.get("tags", []), where
        responses = op["responses"]
        expected = {"401", "422"} | ({"404"} if "{" in path else set())
        if (method == "POST" and "{" not in path) or path.endswith("/transitions"):
            expected |= {"409"}
        assert expected <= set(responses), (where, sorted(responses))
        for status in expected:
            assert "application/problem+json" in responses[status]["content"], (where, status)
        if method == "POST":
            body = op["requestBody"]["content"]["application/json"]["schema"]
            ref = body["$ref"].rsplit("/", 1)[-1]
            assert doc["components"]["schemas"][ref].get("examples"), where
            params = {p["name"] for p in op.get("parameters", [])}
            assert "Idempotency-Key" in params, where
    money = doc["components"]["schemas"]["TermsCreate"]["properties"]["unit_price"]
    assert "number" not in str(money), "money is documented as a string"
