"""The OpenAPI document's surface: every operation, what it takes and what it answers.

Integrators generate clients from /openapi.json, so an operation, a parameter, a status or
a schema name that disappears breaks them. Moving code must leave this table as it is; a
change to the API changes it on purpose, in the same commit.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

#: "METHOD path": (request body schema, success answer schema, parameters, statuses).
OPERATIONS: dict[str, tuple[str | None, str | None, str, str]] = {
    "GET /healthz": (None, "HealthRead", "", "200 503"),
    "GET /metrics": (None, None, "", "200"),
    "POST /v1/auth/token": ("TokenCreate", "TokenRead", "", "200 401 403 422"),
    "GET /v1/deals": (None, "DealPage", "state role process limit cursor", "200 401 422"),
    "POST /v1/deals": (
        "DealCreate", "DealRead", "dry_run Idempotency-Key",
        "200 201 401 403 404 409 410 422 429",
    ),
    "GET /v1/deals/{deal_id}": (None, "DealRead", "deal_id", "200 401 404 422"),
    "GET /v1/deals/{deal_id}/audit/export": (None, None, "deal_id format", "200 401 404 422"),
    "GET /v1/deals/{deal_id}/audit/verify": (
        None, "AuditVerification", "deal_id", "200 401 404 422",
    ),
    "GET /v1/deals/{deal_id}/events": (None, "EventPage", "deal_id after limit", "200 401 404 422"),
    "GET /v1/deals/{deal_id}/messages": (
        None, "MessagePage", "deal_id limit cursor", "200 401 404 422",
    ),
    "POST /v1/deals/{deal_id}/messages": (
        "MessageCreate", "MessageRead", "deal_id Idempotency-Key", "201 401 404 422",
    ),
    "GET /v1/deals/{deal_id}/quotes": (None, "QuoteList", "deal_id", "200 401 404 422"),
    "GET /v1/deals/{deal_id}/quotes/diff": (None, "QuoteDiff", "deal_id from to", "200 401 404 422"),
    "GET /v1/deals/{deal_id}/stream": (
        None, None, "deal_id last_event_id Last-Event-ID", "200 401 404 422",
    ),
    "POST /v1/deals/{deal_id}/transitions": (
        "TransitionCreate", "DealRead", "deal_id dry_run Idempotency-Key",
        "200 401 403 404 409 410 422 429",
    ),
    "GET /v1/events": (None, "FeedPage", "after limit", "200 401 422"),
    "GET /v1/listings": (
        None, "ListingPage", "q category kind sale_mode owner_id status limit cursor",
        "200 401 422",
    ),
    "POST /v1/listings": ("ListingCreate", "ListingRead", "", "201 401 422"),
    "GET /v1/listings/{listing_id}": (None, "ListingRead", "listing_id", "200 401 404 422"),
    "PATCH /v1/listings/{listing_id}": (
        "ListingUpdate", "ListingRead", "listing_id", "200 401 403 404 422",
    ),
    "GET /v1/me": (None, "UserRead", "", "200 401"),
    "GET /v1/me/notifications": (None, "NotificationPage", "limit cursor unread", "200 401 422"),
    "POST /v1/me/notifications/read": (
        "NotificationsReadCreate", "UnreadCountRead", "", "200 401 422",
    ),
    "GET /v1/me/preferences": (None, "PreferencesRead", "", "200 401"),
    "PUT /v1/me/preferences": ("PreferencesUpdate", "PreferencesRead", "", "200 401 422"),
    "GET /v1/me/stream": (None, None, "last_event_id Last-Event-ID", "200 401 422"),
    "GET /v1/processes": (None, "ProcessList", "", "200 401"),
    "POST /v1/processes": ("ProcessCreate", "ProcessRead", "", "201 401 403 409 422"),
    "GET /v1/processes/{name}": (None, "ProcessRead", "name version", "200 401 404 422"),
    "POST /v1/users": ("UserCreate", "UserRead", "", "201 401 403 409 422"),
    "GET /v1/users/{user_id}": (None, "PublicProfileRead", "user_id", "200 401 404 422"),
    "GET /v1/webhooks": (None, "WebhookList", "", "200 401 403"),
    "POST /v1/webhooks": ("WebhookCreate", "WebhookCreated", "", "201 401 403 422"),
    "DELETE /v1/webhooks/{webhook_id}": (None, None, "webhook_id", "204 401 403 404 422"),
    "GET /v1/webhooks/{webhook_id}/deliveries": (
        None, "DeliveryPage", "webhook_id limit cursor status", "200 401 403 404 422",
    ),
}  # fmt: skip

#: Every schema the document names (FastAPI adds the last two, for 422 answers).
SCHEMAS = {
    "AuditVerification", "ChangeRead", "DealCreate", "DealListItem", "DealPage", "DealRead",
    "DeliveryAttemptRead", "DeliveryPage", "DeliveryRead", "EscrowRead", "EventPage",
    "EventRead", "FeeRead", "FeedPage", "HandoffRead", "HealthRead",
    "ListingCreate", "ListingPage", "ListingRead", "ListingUpdate", "MessageCreate",
    "MessagePage", "MessageRead", "NextStep", "NotificationPage", "NotificationsReadCreate",
    "PartyRead", "PreferencesRead", "PreferencesUpdate", "ProcessCreate", "ProcessList",
    "ProcessRead", "ProcessRef", "PublicProfileRead", "QuoteDiff", "QuoteList", "QuoteRead",
    "QuoteSummary", "ShipmentRead", "StateRead", "TermsCreate", "TimerRead", "TokenCreate",
    "TokenRead", "TransitionCreate", "ProcessTransitionRead", "TrustRead", "UnreadCountRead",
    "UserCreate", "UserRead", "WebhookCreate", "WebhookCreated", "WebhookList", "WebhookRead",
    "ProcessNotificationRead", "NotificationRead",
    "HTTPValidationError", "ValidationError",
}  # fmt: skip


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _name(schema: dict[str, Any] | None) -> str | None:
    ref = (schema or {}).get("$ref")
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


def _surface(doc: dict[str, Any]) -> dict[str, tuple[str | None, str | None, str, str]]:
    out = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            bodies = op.get("requestBody", {}).get("content", {}).values()
            answers = [
                content.get("schema")
                for status, answer in op["responses"].items()
                if status.startswith("2")
                for content in answer.get("content", {}).values()
            ]
            out[f"{method.upper()} {path}"] = (
                next((_name(b.get("schema")) for b in bodies), None),
                next((n for n in map(_name, answers) if n), None),
                " ".join(p["name"] for p in op.get("parameters", [])),
                " ".join(sorted(op["responses"])),
            )
    return out


def test_the_document_holds_every_operation_with_its_body_answer_parameters_and_statuses(
    doc: dict[str, Any],
) -> None:
    assert _surface(doc) == OPERATIONS


def test_the_document_names_exactly_the_known_schemas(doc: dict[str, Any]) -> None:
    assert set(doc["components"]["schemas"]) == SCHEMAS


def test_no_two_schemas_share_a_name(doc: dict[str, Any]) -> None:
    """FastAPI prefixes a name with its module path when two classes share it."""
    assert [n for n in doc["components"]["schemas"] if "__" in n] == []
