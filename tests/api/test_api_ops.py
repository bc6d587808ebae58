"""Operations: /healthz, /metrics, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dealroom.api.routes_ops import install_metrics
from dealroom.app import create_app
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db.session import Database, make_engine
from factories import T0
from people import add_user, make_listing


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    install_metrics(app)  # idempotent: a no-op once create_app installs it itself
    return app


def test_healthz_answers_ok_when_the_database_answers(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_down(tmp_path: Any, clock: TestClock) -> None:
    unreachable = f"sqlite:///{tmp_path}/no/such/dir/dealroom.db"
    db = Database(make_engine(unreachable))
    app = create_app(
        Config(database_url=unreachable, secret_key="x" * 32), database=db, clock=clock
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/healthz")
    db.engine.dispose()
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "NEG-010"
    assert r.headers["Retry-After"] == "2"


def test_metrics_count_requests_by_route_template_and_status(
    client: TestClient, db: Database
) -> None:
    seller = add_user(db, T0, "nora@parts.example")
    listing = make_listing(client, seller)
    for _ in range(2):
        client.get(f"/v1/listings/{listing['id']}")
    client.get("/v1/listings/00000000-0000-0000-0000-000000000000")
    client.get("/no/such/page")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'dealroom_http_requests_total{method="GET",route="/v1/listings/{listing_id}",'
        'status="200"} 2.0'
    ) in text
    assert (
        'dealroom_http_requests_total{method="GET",route="/v1/listings/{listing_id}",'
        'status="404"} 1.0'
    ) in text
    assert (
        'dealroom_http_requests_total{method="POST",route="/v1/listings",status="201"} 1.0' in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert listing["id"] not in text  # raw paths never become labels
    assert (
        'dealroom_http_request_duration_seconds_count{method="GET",route="/v1/listings/{listing_id}"} 3.0'
        in text
    )


def test_metrics_show_deals_by_state_and_transitions_fired(
    client: TestClient, db: Database
) -> None:
    seller = add_user(db, T0, "nora@parts.example")
    listing = make_listing(client, seller)
    for i in range(2):
        buyer = add_user(db, T0, f"buyer{i}@acme.example")
        r = client.post(
            "/v1/deals",
            json={"listing_id": listing["id"], "transition": "make-offer",
                  "terms": {"unit_price": "45.00", "quantity": 10}},
            headers=buyer.headers,
        )  # fmt: skip
        assert r.status_code == 201, r.text
    deal = r.json()
    accepted = client.post(
        f"/v1/deals/{deal['id']}/transitions",
        json={"name": "accept", "expected_version": deal["version"]},
        headers=seller.headers,
    )
    assert accepted.status_code == 200
    text = client.get("/metrics").text
    assert 'dealroom_deals{process="market",state="offer-pending"} 1.0' in text
    assert 'dealroom_deals{process="market",state="terms-agreed"} 1.0' in text
    assert 'dealroom_transitions_total{actor_type="buyer",transition="make-offer"} 2.0' in text
    assert 'dealroom_transitions_total{actor_type="seller",transition="accept"} 1.0' in text
    assert "dealroom_feed_position 3.0" in text


def test_install_metrics_twice_adds_one_middleware(app: FastAPI, client: TestClient) -> None:
    install_metrics(app)
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'dealroom_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


# --- the OpenAPI document ---------------------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def test_every_request_body_has_an_example(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    bodies = 0
    missing = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody") if isinstance(op, dict) else None
            if not body:
                continue
            for media, content in body["content"].items():
                bodies += 1
                schema = _resolve(doc, content.get("schema", {}))
                has = "example" in content or "examples" in content
                has = has or "example" in schema or "examples" in schema
                if not has:
                    missing.append(f"{method.upper()} {path} ({media})")
    assert bodies >= 5
    assert missing == []


def test_the_document_describes_the_accounts_side_of_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (
        ("/v1/auth/token", "post"), ("/v1/users", "post"), ("/v1/me", "get"),
        ("/v1/users/{user_id}", "get"), ("/v1/listings", "post"), ("/v1/listings", "get"),
        ("/v1/listings/{listing_id}", "get"), ("/v1/listings/{listing_id}", "patch"),
        ("/v1/events", "get"), ("/v1/processes", "get"), ("/v1/processes", "post"),
        ("/v1/processes/{name}", "get"), ("/healthz", "get"), ("/metrics", "get"),
    ):  # fmt: skip
        assert method in paths.get(path, {}), (method, path)
