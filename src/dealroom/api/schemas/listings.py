"""Listings: what is offered or wanted, created and edited by their owner.

Inputs carry an OpenAPI example; money travels as a decimal string, never a float. Answers
are built from ORM rows with `ListingRead.model_validate(row)`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from dealroom.api.schemas.base import Input, Timestamp
from dealroom.api.schemas.processes import ProcessName
from dealroom.domain.quotes import at_least_cents
from dealroom.domain.rules import MAX_QUANTITY
from dealroom.domain.settings import Settings, SettingsError

#: A positive exact amount: up to 18 digits before the point and 6 after (Numeric(24, 6)).
MONEY_RE = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$"
#: Attributes and rules are free-form JSON; this bounds their serialized size.
MAX_JSON_CHARS = 16_000

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(max_length=20_000)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MoneyText = Annotated[str, StringConstraints(pattern=MONEY_RE, max_length=25)]
Quantity = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]
Kind = Literal["sell", "buy"]
SaleMode = Literal["negotiable", "buy_now", "auction"]
ListingStatus = Literal["active", "paused", "closed"]


def positive_money(value: str | None) -> str | None:
    if value is not None and Decimal(value) <= 0:
        raise ValueError("must be greater than zero")
    return value


def bounded_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > MAX_JSON_CHARS:
        raise ValueError(f"must be at most {MAX_JSON_CHARS} characters as JSON")
    return value


def known_rules(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rule-setting overrides must name known settings with values of the right type."""
    if value is None:
        return None
    bounded_json(value)
    try:
        Settings.from_mapping(value)
    except SettingsError as exc:
        raise ValueError("; ".join(exc.problems)) from None
    return value


def money_text(value: Any) -> Any:
    return str(at_least_cents(value)) if isinstance(value, Decimal) else value


LISTING_EXAMPLE: dict[str, Any] = {
    "title": "Dell Latitude 7420 laptops, grade A",
    "description": "Refurbished, 16 GB RAM, 512 GB SSD, 90-day warranty.",
    "category": "laptops",
    "kind": "sell",
    "currency": "SAR",
    "unit_price": "1450.00",
    "quantity": 200,
    "min_order_qty": 10,
    "max_order_qty": 200,
    "sale_mode": "negotiable",
    "process": "market",
    "attributes": {"grade": "A", "warranty_days": 90},
    "rules": {"max_rounds": 4, "counter_response_window": "PT48H"},
}


class ListingCreate(Input):
    title: Title
    description: Description | None = None
    category: Category | None = None
    kind: Kind = "sell"
    currency: Currency
    unit_price: MoneyText = Field(description='Decimal string, e.g. "1450.00".')
    quantity: Quantity = 1
    min_order_qty: Quantity | None = None
    max_order_qty: Quantity | None = None
    sale_mode: SaleMode = "negotiable"
    process: ProcessName | None = Field(
        default=None, description="Defaults by sale_mode: every mode uses `market`."
    )
    attributes: dict[str, Any] = Field(default_factory=dict)
    rules: dict[str, Any] = Field(
        default_factory=dict,
        description="Rule-setting overrides for deals on this listing (e.g. max_rounds).",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [LISTING_EXAMPLE]})

    _price = field_validator("unit_price")(positive_money)
    _attributes = field_validator("attributes")(bounded_json)
    _rules = field_validator("rules")(known_rules)

    @model_validator(mode="after")
    def _order_range(self) -> ListingCreate:
        check_order_range(self.quantity, self.min_order_qty, self.max_order_qty)
        return self


def check_order_range(quantity: int | None, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ValueError("min_order_qty may not exceed max_order_qty")
    if quantity is not None and low is not None and low > quantity:
        raise ValueError("min_order_qty may not exceed quantity")


class ListingUpdate(Input):
    """Only the fields sent change; `null` clears an optional field."""

    title: Title | None = None
    description: Description | None = None
    category: Category | None = None
    currency: Currency | None = None
    unit_price: MoneyText | None = None
    quantity: Quantity | None = None
    min_order_qty: Quantity | None = None
    max_order_qty: Quantity | None = None
    sale_mode: SaleMode | None = None
    process: ProcessName | None = None
    attributes: dict[str, Any] | None = None
    rules: dict[str, Any] | None = None
    status: ListingStatus | None = Field(
        default=None, description="`paused` or `closed` stops new deals; open deals go on."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"unit_price": "1390.00", "quantity": 150, "rules": {"max_rounds": 3}},
                {"status": "closed"},
            ]
        }
    )

    _price = field_validator("unit_price")(positive_money)
    _attributes = field_validator("attributes")(bounded_json)
    _rules = field_validator("rules")(known_rules)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> ListingUpdate:
        required = (
            "title", "currency", "unit_price", "quantity", "sale_mode", "process",
            "attributes", "rules", "status",
        )  # fmt: skip
        nulls = [f for f in required if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.model_fields_set}


class ListingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    owner_id: str
    kind: str
    title: str
    description: str | None
    category: str | None
    currency: str
    unit_price: str
    quantity: int
    min_order_qty: int | None
    max_order_qty: int | None
    sale_mode: str
    process: str
    attributes: dict[str, Any]
    rules: dict[str, Any]
    status: str
    offer_count: int = Field(default=0, description="Open deals on this listing.")
    created_at: Timestamp
    updated_at: Timestamp

    _price = field_validator("unit_price", mode="before")(money_text)


class ListingPage(BaseModel):
    items: list[ListingRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
