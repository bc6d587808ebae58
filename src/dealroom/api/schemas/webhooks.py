"""Webhooks: endpoints that receive signed deliveries of committed events, and the log of
those deliveries."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from dealroom.api.schemas.base import Input, Timestamp

EventFilter = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^(\*|[A-Z][A-Z0-9_]{0,63})$")
]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class WebhookCreate(Input):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
    events: list[EventFilter] = Field(
        min_length=1,
        max_length=100,
        description='Event types to receive (e.g. "COUNTER_SUBMITTED"), or "*" for all.',
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://erp.example.com/hooks/dealroom",
                    "events": ["COUNTER_SUBMITTED", "QUOTE_ACCEPTED", "ORDER_CREATED"],
                }
            ]
        }
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if any(c.isspace() for c in value):
            raise ValueError("may not contain spaces")
        return value


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    created_at: Timestamp


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="Signs every delivery (docs/webhooks.md). Shown only in this answer."
    )


class WebhookList(BaseModel):
    items: list[WebhookRead]


class DeliveryAttemptRead(BaseModel):
    attempt: int
    at: Timestamp
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Sent as the `Dealroom-Delivery` header.")
    event: str = Field(validation_alias="event_type", description="The event type.")
    feed_seq: int = Field(description="The event's position in `GET /v1/events`.")
    deal_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="When it is tried again (pending only).")
    created_at: Timestamp
    delivered_at: Timestamp | None
    history: list[DeliveryAttemptRead]

    @field_validator("next_attempt_at", mode="before")
    @classmethod
    def _only_pending(cls, value: Any, info: Any) -> Any:
        return value if info.data.get("status") == "pending" else None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for older deliveries.")
