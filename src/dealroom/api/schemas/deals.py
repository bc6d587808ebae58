"""Deals: opening one, firing a transition, and the deal as a party reads it (API.md,
"Deals").

Inputs forbid unknown fields and bound every size, so a 1 MB body is a 422, never a 500.
Money is an exact decimal string; a JSON number with a fraction is refused (NEG-003): a
float cannot carry "47.10" exactly. The answers are documented here for the OpenAPI
document; they are rendered by `dealroom.services.views`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, field_validator

from dealroom.api.schemas.base import Input, Output, Timestamp
from dealroom.api.schemas.quotes import QuoteRead, QuoteSummary
from dealroom.api.schemas.users import TrustRead
from dealroom.domain.rules import MAX_MESSAGE, MAX_QUANTITY, MAX_TEXT

MAX_REASON = 1000
MAX_DATA_CHARS = 20_000
MAX_INT = 2**31 - 1

_DECIMAL = re.compile(r"^[+-]?(\d{1,30})(\.\d{1,12})?$")


def _money(value: Any) -> Any:
    """Accept a decimal string (or a whole number); refuse floats, NaN and exponents."""
    if isinstance(value, bool):
        raise ValueError('must be a decimal string such as "47.00", not true/false')
    if isinstance(value, float):
        raise ValueError(
            'must be a decimal string such as "47.00": a JSON number with a fraction '
            "cannot be exact"
        )
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "47.00"')
    text = value.strip()
    if not _DECIMAL.match(text):
        raise ValueError(f'must be a decimal string such as "47.00", not {value[:40]!r}')
    return text


Money = Annotated[
    str,
    BeforeValidator(_money),
    Field(json_schema_extra={"type": "string", "pattern": _DECIMAL.pattern}),
]


def _bounded_data(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > MAX_DATA_CHARS:
        raise ValueError(f"data is at most {MAX_DATA_CHARS} characters of JSON")
    return value


# --- inputs -------------------------------------------------------------------------------


class TermsCreate(Input):
    """Proposed terms. Give what changes: the rest comes from the terms on the table, else
    the listing snapshot (a move that gives only a quantity takes the listing's price)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"unit_price": "47.00", "quantity": 1000, "lead_time_days": 5}]
        },
    )

    unit_price: Money | None = Field(None, description='Exact decimal string, e.g. "47.00".')
    quantity: int | None = Field(None, ge=1, le=MAX_QUANTITY)
    lead_time_days: int | None = Field(None, ge=0, le=3650)
    delivery_terms: str | None = Field(None, max_length=MAX_TEXT)
    valid_until: AwareDatetime | None = Field(
        None, description="ISO-8601 with a zone; default: the process's quote validity."
    )
    discount_percent: Money | None = Field(None, description='0 to below 100, e.g. "2.5".')
    notes: str | None = Field(None, max_length=MAX_TEXT)

    def given(self) -> dict[str, Any]:
        """Only the fields the client sent (an explicit null clears a term)."""
        return self.model_dump(exclude_unset=True)


Message = Annotated[str | None, Field(None, max_length=MAX_MESSAGE)]
Reason = Annotated[str | None, Field(None, max_length=MAX_REASON)]


class DealCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "listing_id": "7f1c2d9e-8a41-4c3b-9d0e-2b6f4a1c5e77",
                    "process": "rfq",
                    "transition": "request-quote",
                    "terms": {"quantity": 1000},
                    "message": "Need for Q2 production",
                },
                {
                    "listing_id": "7f1c2d9e-8a41-4c3b-9d0e-2b6f4a1c5e77",
                    "transition": "make-offer",
                    "terms": {"unit_price": "45.00", "quantity": 500},
                    "message": "Can ship from Riyadh next week.",
                },
            ]
        },
    )

    listing_id: str = Field(..., min_length=1, max_length=64)
    process: str | None = Field(
        None, max_length=64, description="Defaults to the listing's process."
    )
    transition: str = Field(
        ..., min_length=1, max_length=100, description="An initial transition of the process."
    )
    terms: TermsCreate | None = None
    message: Message = None
    reason: Reason = None
    data: dict[str, Any] | None = Field(
        None,
        description="Transition-specific fields: offer details (buyer_role, timeline, "
        "financing), Sharetribe parameters, or buyer_id for an operator-recorded auction win.",
    )

    _data = field_validator("data")(_bounded_data)


class TransitionCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "counter",
                    "expected_version": 2,
                    "terms": {"unit_price": "45.00"},
                    "message": "Volume discount expected for this quantity",
                },
                {"name": "accept", "expected_version": 4, "reason": "Terms acceptable"},
                {"name": "request-close", "expected_version": 3, "data": {"escrow_waived": True}},
            ]
        },
    )

    name: str = Field(..., min_length=1, max_length=100, description="The transition to fire.")
    expected_version: int = Field(
        ..., ge=0, le=MAX_INT, description="The deal version you decided on (NEG-004 if stale)."
    )
    terms: TermsCreate | None = None
    message: Message = None
    reason: Reason = None
    data: dict[str, Any] | None = Field(
        None, description="Transition-specific fields, e.g. escrow_waived on request-close."
    )

    _data = field_validator("data")(_bounded_data)


# --- answers ------------------------------------------------------------------------------


class ProcessRef(Output):
    name: str
    version: int


class PartyRead(Output):
    id: str
    name: str
    organization: str | None = None
    trust: TrustRead | None = Field(
        default=None,
        description="The party's trust profile, at most `DEALROOM_TRUST_CACHE_SECONDS` (60) "
        "seconds old; `GET /v1/users/{id}` gives it as of now.",
    )


class NextStep(Output):
    action: str
    actor: str
    due_at: Timestamp | None = None


class FeeRead(Output):
    name: str
    payer: str
    percent: str | None = None
    amount: str | None = None
    currency: str | None = None


class EscrowRead(Output):
    id: str
    status: str
    amount: str | None = None


class ShipmentRead(Output):
    id: str
    status: str


class HandoffRead(Output):
    order_ref: str
    total: str
    currency: str
    quote_version: int | None = None
    fees: list[FeeRead] = Field(default=[])
    escrow: EscrowRead | None = None
    shipment: ShipmentRead | None = None


class DealRead(Output):
    id: str
    ref: str
    process: ProcessRef
    state: str | None
    version: int
    listing_id: str
    listing_snapshot: dict[str, Any]
    listing_changed: bool = False
    buyer: PartyRead | None
    seller: PartyRead | None
    viewer_role: str
    current_quote: QuoteRead | None
    accepted_quote: QuoteRead | None
    round: int
    transition_count: int
    transitions_left: int | None = None
    available_transitions: list[str]
    deadlines: dict[str, Any]
    next_step: NextStep | None
    fees: list[FeeRead] = Field(default=[])
    handoff: HandoffRead | None
    data: dict[str, Any] = Field(default={})
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None
    dry_run: bool | None = Field(
        None, description="True on a dry-run answer: the would-be deal, nothing saved."
    )


class DealListItem(Output):
    """A deal in a list: what an inbox row shows, loaded without a query per row."""

    id: str
    ref: str
    process: ProcessRef
    state: str
    version: int
    listing_id: str
    listing_title: str
    buyer: PartyRead | None
    seller: PartyRead | None
    viewer_role: str
    current_quote: QuoteSummary | None
    round: int
    order_ref: str | None = None
    next_step: NextStep | None
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None


class DealPage(Output):
    items: list[DealListItem]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )
