"""Schemas of the accounts side of the API: tokens, users, listings, the event feed,
process definitions and health.

Inputs (`XCreate`, `XUpdate`) forbid unknown fields, bound every string and carry an
OpenAPI example; money travels as a decimal string, never a float. Outputs (`XRead`) are
built from ORM rows with `XRead.model_validate(row)`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from dealroom.domain.quotes import at_least_cents
from dealroom.domain.settings import Settings, SettingsError

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
#: A positive exact amount: up to 18 digits before the point and 6 after (Numeric(24, 6)).
MONEY_RE = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$"
NAME_RE = r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"
#: The largest quantity an order line holds (a 32-bit column on PostgreSQL).
MAX_QUANTITY = 1_000_000_000
#: Attributes and rules are free-form JSON; this bounds their serialized size.
MAX_JSON_CHARS = 16_000

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=EMAIL_RE)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(max_length=20_000)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MoneyText = Annotated[str, StringConstraints(pattern=MONEY_RE, max_length=25)]
Quantity = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]
ProcessName = Annotated[str, StringConstraints(max_length=64, pattern=NAME_RE)]
Role = Literal["admin", "operator"]
Plan = Literal["free", "paid"]
Kind = Literal["sell", "buy"]
SaleMode = Literal["negotiable", "buy_now", "auction"]
ListingStatus = Literal["active", "paused", "closed"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


def known_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone such as Asia/Riyadh") from None
    return value


def money_text(value: Any) -> Any:
    return str(at_least_cents(value)) if isinstance(value, Decimal) else value


# --- auth and users --------------------------------------------------------------------


class TokenCreate(Input):
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
    password: Annotated[str, StringConstraints(max_length=200)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "buyer@acme.example", "password": "correct horse battery"}]
        }
    )


class UserRead(BaseModel):
    """The caller's own account (GET /v1/me, a token, an admin creating a user)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str
    organization: str | None
    roles: list[str]
    kyc_verified: bool
    plan: str
    timezone: str
    locale: str
    blocked: bool
    created_at: datetime


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserRead


class UserCreate(Input):
    email: Email
    name: Name
    password: Password
    organization: Name | None = None
    roles: list[Role] = Field(default_factory=list, max_length=2)
    kyc_verified: StrictBool = False
    plan: Plan = "free"
    timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "buyer@acme.example",
                    "name": "Amal Buyer",
                    "password": "correct horse battery",
                    "organization": "Acme Corp",
                    "roles": [],
                    "kyc_verified": True,
                    "plan": "paid",
                    "timezone": "Asia/Riyadh",
                }
            ]
        }
    )

    _timezone = field_validator("timezone")(known_timezone)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class TrustRead(BaseModel):
    """Facts from the record, not ratings: how long, how many, how fast (services.trust)."""

    member_since: str = Field(description="Account creation date (ISO-8601).")
    account_age_days: int
    kyc_verified: bool
    deals_closed: int = Field(description="Deals ended with an order, as buyer or seller.")
    deals_ended: int = Field(description="Deals that reached a final state.")
    completion_rate: float | None = Field(
        description="Share of ended deals that closed with an order (0…1); null before any."
    )
    median_response_seconds: int | None = Field(
        description="Median time this user took to answer the other party's move."
    )
    responses: int = Field(description="Answers the median and SLA share are taken over.")
    responses_within_sla: float | None = Field(
        description="Share of those answers within the process's response-time SLA (0…1)."
    )
    reviews_average: float | None = Field(description="Average published review rating.")
    reviews_count: int


class PublicProfileRead(BaseModel):
    """What anyone signed in may see of a user: no email, no roles."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    organization: str | None
    kyc_verified: bool
    created_at: datetime
    trust: TrustRead


# --- listings -------------------------------------------------------------------------


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
    created_at: datetime
    updated_at: datetime

    _price = field_validator("unit_price", mode="before")(money_text)


class ListingPage(BaseModel):
    items: list[ListingRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# --- the event feed -------------------------------------------------------------------


class FeedEventRead(BaseModel):
    """An audit event as API.md shapes it (`seq` is the per-deal sequence), plus its
    position in the global feed."""

    seq: int
    feed_seq: int
    type: str
    deal_id: str
    actor_id: str | None
    actor_type: str
    from_state: str | None
    to_state: str | None
    payload: dict[str, Any]
    created_at: str
    prev_hash: str
    hash: str


class FeedPage(BaseModel):
    items: list[FeedEventRead]
    next_after: int = Field(description="Pass as `after` to poll for what follows.")


# --- processes ------------------------------------------------------------------------


class StateRead(BaseModel):
    name: str
    description: str | None
    final: bool


class TimerRead(BaseModel):
    state: str
    at: str = Field(description="The time expression, e.g. `entered + setting(response_window)`.")
    rule: str | None
    event: str | None


class ProcessTransitionRead(BaseModel):
    """A transition as the process defines it (firing one on a deal is `TransitionCreate`)."""

    name: str
    title: str | None
    initial: bool
    automatic: bool
    from_: list[str] = Field(serialization_alias="from")
    to: str
    to_by_role: dict[str, str]
    actors: list[str]
    actions: list[str]
    timers: list[TimerRead]
    privileged: bool
    sale_modes: list[str]


class ProcessNotificationRead(BaseModel):
    """A notification the process declares: who hears of what, and when. Each one sent
    becomes a bell item (`NotificationRead`)."""

    name: str
    to: list[str]
    template: str
    on: list[str]
    state: str | None
    at: str | None
    before: str | None
    by: str | None


class ProcessRead(BaseModel):
    name: str
    version: int
    title: str
    description: str
    builtin: bool
    states: list[StateRead]
    transitions: list[ProcessTransitionRead]
    settings: dict[str, Any]
    notifications: list[ProcessNotificationRead]


class ProcessList(BaseModel):
    items: list[ProcessRead]


class ProcessCreate(Input):
    format: Literal["toml", "edn"]
    definition: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]
    name: ProcessName | None = Field(
        default=None,
        description="The name to store an EDN process under (required for EDN; a TOML "
        "definition names itself).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "format": "edn",
                    "name": "quick-offer",
                    "definition": "{:format :v3\n :transitions\n [{:name :transition/request"
                    "\n   :actor :actor.role/customer\n   :actions []\n   :to :state/requested}"
                    "\n  {:name :transition/accept\n   :actor :actor.role/provider"
                    "\n   :actions []\n   :from :state/requested\n   :to :state/accepted}]"
                    "\n :notifications []}",
                },
                {
                    "format": "toml",
                    "definition": '[process]\nname = "quick-offer"\nversion = 1\n\n[states]\n'
                    'requested = "Asked"\naccepted = "Agreed"\n\n[[transitions]]\n'
                    'name = "request"\nto = "requested"\nactor = "buyer"\n\n'
                    '[[transitions]]\nname = "accept"\nfrom = "requested"\n'
                    'to = "accepted"\nactor = "seller"\n',
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _name_only_for_edn(self) -> ProcessCreate:
        if self.name is not None and self.format == "toml":
            raise ValueError("a TOML definition names itself in [process] name; drop `name`")
        if self.name is None and self.format == "edn":
            raise ValueError("an EDN process needs a `name` to be stored under")
        return self


# --- operations -----------------------------------------------------------------------


class HealthRead(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
