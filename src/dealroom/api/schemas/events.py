"""Audit events: a deal's hash-chained trail (`/v1/deals/{id}/events`, its verification) and
the global feed (`/v1/events`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dealroom.api.schemas.base import Output, Timestamp


class EventRead(Output):
    """An audit event, the same wherever it is read: a deal's trail, the global feed, a
    live stream, a webhook delivery."""

    seq: int = Field(description="Its place in the deal's trail (1, 2, …).")
    feed_seq: int = Field(description="Its place in the global feed, `GET /v1/events`.")
    type: str
    deal_id: str
    actor_id: str | None
    actor_type: str = Field(..., description="buyer, seller, operator or system")
    from_state: str | None
    to_state: str | None
    payload: dict[str, Any]
    created_at: Timestamp
    prev_hash: str
    hash: str


class EventPage(Output):
    items: list[EventRead]
    next_after: int | None = Field(
        None, description="Pass as `after` to read on (the last `seq` returned)."
    )
    has_more: bool = False


class AuditVerification(Output):
    valid: bool
    events: int
    head_hash: str | None
    first_bad_seq: int | None
    reason: str | None = None


class FeedPage(BaseModel):
    items: list[EventRead]
    next_after: int = Field(description="Pass as `after` to poll for what follows.")
