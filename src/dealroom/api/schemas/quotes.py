"""A deal's quote versions and the difference between two (`/v1/deals/{id}/quotes`)."""

from __future__ import annotations

from typing import Any

from dealroom.api.schemas.base import Output, Timestamp


class QuoteRead(Output):
    version: int
    created_by_role: str
    unit_price: str
    quantity: int
    total_price: str
    currency: str
    discount_percent: str | None = None
    lead_time_days: int | None = None
    delivery_terms: str | None = None
    valid_until: Timestamp | None = None
    notes: str | None = None
    change_reason: str
    price_change_pct: str | None = None
    lead_time_change_days: int | None = None
    status: str
    message: str | None = None
    created_at: Timestamp


class QuoteSummary(Output):
    version: int
    created_by_role: str
    unit_price: str
    quantity: int
    total_price: str
    currency: str
    status: str


class QuoteList(Output):
    items: list[QuoteRead]


class ChangeRead(Output):
    field: str
    old_value: Any
    new_value: Any
    percent_change: str | None = None


class QuoteDiff(Output):
    from_version: int
    to_version: int
    changes: list[ChangeRead]
    summary: str
