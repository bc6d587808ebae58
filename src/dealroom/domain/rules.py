"""The negotiation rules of the reference documents, as plain functions.

rfq reference: CTR-001…006, NEG-V01…V06, NEG-L01/L02/L05. Offer reference: amount range,
message length, buyer fields, KYC and plan thresholds, the 10% floor (here OFR-001…009).
Each refusal names its rule and field and says in a sentence what to change. Rules that
need counting across deals (offers per day, one open offer per listing) are enforced by the
service layer with `Settings.offers_per_day` and `Settings.one_open_offer_per_listing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dealroom.domain.errors import (
    CounterValidationFailed,
    FieldProblem,
    MaxRoundsExceeded,
    VerificationRequired,
)
from dealroom.domain.quotes import TERM_FIELDS, Terms, at_least_cents, percent_change
from dealroom.domain.settings import Settings
from dealroom.domain.state import Actor, DealState, Payload

MAX_TEXT = 2000
MAX_MESSAGE = 5000
MAX_QUANTITY = 1_000_000_000
MAX_PRICE = Decimal("1e12")

#: What a buyer tells the seller with an offer (offer reference: role, timeline, financing).
OFFER_DETAIL_FIELDS = ("buyer_role", "timeline", "financing", "experience")

OFFER_FIELD_CHOICES = {
    "buyer_role": ("individual", "company", "investor"),
    "timeline": ("immediate", "30days", "60days"),
    "financing": ("cash", "sba_loan", "seller_financing"),
}


def field_error(field: str, rule: str, message: str) -> CounterValidationFailed:
    return CounterValidationFailed(
        message, rule=rule, field=field, problems=[FieldProblem(field, rule, message)]
    )


def _refuse(problems: list[FieldProblem]) -> None:
    if problems:
        first = problems[0]
        detail = first.message if len(problems) == 1 else " ".join(p.message for p in problems)
        raise CounterValidationFailed(detail, rule=first.rule, field=first.field, problems=problems)


def _fmt(d: Decimal) -> str:
    return f"{d:,.2f}" if d == d.quantize(Decimal("0.01")) else f"{d:,f}"


def _pct(d: Decimal) -> str:
    text = f"{abs(d):.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


# --- parsing terms ------------------------------------------------------------------------


def _decimal(raw: Any, field: str, problems: list[FieldProblem]) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        problems.append(
            FieldProblem(field, "TERMS", f'{field} must be a decimal string such as "47.00".')
        )
        return None
    try:
        d = Decimal(str(raw).strip())
    except InvalidOperation:
        problems.append(FieldProblem(field, "TERMS", f"{field} '{raw}' is not a number."))
        return None
    if not d.is_finite():
        problems.append(FieldProblem(field, "TERMS", f"{field} must be a finite number."))
        return None
    return d


def _int(raw: Any, field: str, problems: list[FieldProblem]) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() and len(raw) < 12:
            return int(raw)
        problems.append(FieldProblem(field, "TERMS", f"{field} must be a whole number."))
        return None
    return raw


def _text(raw: Any, field: str, problems: list[FieldProblem], limit: int = MAX_TEXT) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.append(FieldProblem(field, "TERMS", f"{field} must be text."))
        return None
    if len(raw) > limit:
        problems.append(
            FieldProblem(field, "TERMS", f"{field} is {len(raw)} characters; at most {limit}.")
        )
        return None
    return raw


def _time(raw: Any, field: str, problems: list[FieldProblem]) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if t.tzinfo is not None:
                return t
    problems.append(
        FieldProblem(
            field,
            "TERMS",
            f"{field} must be an ISO-8601 time with a zone, such as 2026-02-08T00:00:00Z.",
        )
    )
    return None


def build_terms(
    deal: DealState, payload: Payload, *, base: Terms | None, now: datetime, role: str
) -> Terms:
    """Terms of a new version: what the move gives, else the pending terms, else the listing.

    A move that gives only a quantity takes its unit price from the listing snapshot
    (API.md), or from the terms on the table when there are some.
    """
    raw = dict(payload.terms or {})
    problems: list[FieldProblem] = []
    for key in raw:
        if key not in TERM_FIELDS:
            problems.append(FieldProblem(key, "TERMS", f"'{key}' is not a term."))
    listing = deal.listing
    request = deal.data.get("request", {})

    unit_price: Decimal | None
    if "unit_price" in raw:
        unit_price = _decimal(raw["unit_price"], "unit_price", problems)
    else:
        unit_price = base.unit_price if base else listing.unit_price
    if unit_price is not None and not (Decimal(0) < unit_price <= MAX_PRICE):
        problems.append(
            FieldProblem("unit_price", "TERMS", "unit_price must be above zero and below 10^12.")
        )
    elif unit_price is not None:
        if unit_price.as_tuple().exponent < -6:  # type: ignore[operator]
            problems.append(
                FieldProblem("unit_price", "TERMS", "unit_price has at most 6 decimal places.")
            )
        unit_price = at_least_cents(unit_price)

    quantity: int | None
    if "quantity" in raw:
        quantity = _int(raw["quantity"], "quantity", problems)
    else:
        quantity = base.quantity if base else int(request.get("quantity") or listing.quantity)
    if quantity is not None and not (1 <= quantity <= MAX_QUANTITY):
        problems.append(FieldProblem("quantity", "TERMS", "quantity must be at least 1."))

    lead: int | None = base.lead_time_days if base else request.get("lead_time_days")
    if "lead_time_days" in raw:
        lead = (
            None
            if raw["lead_time_days"] is None
            else _int(raw["lead_time_days"], "lead_time_days", problems)
        )
    if lead is not None and lead > 3650:
        problems.append(FieldProblem("lead_time_days", "TERMS", "lead_time_days is at most 3650."))

    discount: Decimal | None = base.discount_percent if base else None
    if "discount_percent" in raw:
        discount = (
            None
            if raw["discount_percent"] is None
            else _decimal(raw["discount_percent"], "discount_percent", problems)
        )
    if discount is not None and not (Decimal(0) <= discount < 100):
        problems.append(
            FieldProblem(
                "discount_percent", "TERMS", "discount_percent must be from 0 to below 100."
            )
        )

    valid_until: datetime | None
    if raw.get("valid_until") is not None:
        valid_until = _time(raw["valid_until"], "valid_until", problems)
        if valid_until is not None and valid_until <= now:
            problems.append(
                FieldProblem("valid_until", "TERMS", "valid_until must be in the future.")
            )
    elif deal.settings.counter_rules:
        # NEG-T03: a quote stays valid for the process's validity period unless it says.
        valid_until = deal.settings.quote_validity.add_to(now)
    else:
        valid_until = None

    delivery = _text(
        raw.get("delivery_terms", base.delivery_terms if base else None), "delivery_terms", problems
    )
    notes = _text(raw.get("notes"), "notes", problems)
    _refuse(problems)
    assert unit_price is not None
    assert quantity is not None
    return Terms(
        unit_price=unit_price,
        quantity=quantity,
        currency=listing.currency,
        lead_time_days=lead,
        delivery_terms=delivery,
        valid_until=valid_until,
        discount_percent=discount,
        notes=notes,
    )


def parse_request(deal: DealState, payload: Payload) -> dict[str, Any]:
    """The buyer's request for quote: what they need, not yet a price."""
    raw = dict(payload.terms or {})
    problems: list[FieldProblem] = []
    out: dict[str, Any] = {}
    if "quantity" in raw:
        q = _int(raw["quantity"], "quantity", problems)
        if q is not None and q < 1:
            problems.append(FieldProblem("quantity", "TERMS", "quantity must be at least 1."))
        out["quantity"] = q
    else:
        out["quantity"] = deal.listing.quantity
    if raw.get("lead_time_days") is not None:
        out["lead_time_days"] = _int(raw["lead_time_days"], "lead_time_days", problems)
    if raw.get("notes") is not None:
        out["notes"] = _text(raw["notes"], "notes", problems)
    if payload.message:
        out["message"] = payload.message
    if deal.settings.counter_rules and out.get("quantity"):
        problems += _quantity_bounds(deal, out["quantity"])
    _refuse(problems)
    return out


def mapping_field(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise field_error(key, "DATA", f"{key} must be an object.")
    return dict(value)


def parse_review(payload: Payload) -> dict[str, Any]:
    rating = payload.data.get("reviewRating")
    content = payload.data.get("reviewContent", "")
    problems: list[FieldProblem] = []
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        problems.append(FieldProblem("reviewRating", "REVIEW", "reviewRating must be 1 to 5."))
    if not isinstance(content, str) or len(content) > MAX_TEXT:
        problems.append(
            FieldProblem(
                "reviewContent",
                "REVIEW",
                f"reviewContent must be text of at most {MAX_TEXT} characters.",
            )
        )
    _refuse(problems)
    return {"rating": rating, "content": content}


# --- counter and validation rules (rfq reference) ----------------------------------------


def check_limits(deal: DealState, settings: Settings, *, counting: bool) -> None:
    """NEG-L01 (rounds) and NEG-L02 (versions), before anything is built."""
    if settings.max_versions is not None and len(deal.versions) + 1 > settings.max_versions:
        raise MaxRoundsExceeded(
            f"This negotiation already has {len(deal.versions)} quote versions, the most "
            f"allowed ({settings.max_versions}). Accept or reject the terms on the table.",
            rule="NEG-L02",
            limit=settings.max_versions,
        )
    if counting and settings.max_rounds is not None:
        would_be = -(-(deal.proposals + 1) // 2)
        if would_be > settings.max_rounds:
            raise MaxRoundsExceeded(
                f"This negotiation has reached its {settings.max_rounds} rounds. Accept or "
                "reject the terms on the table.",
                rule="NEG-L01",
                limit=settings.max_rounds,
                round=deal.round,
            )


def _quantity_bounds(deal: DealState, quantity: int) -> list[FieldProblem]:
    lo, hi = deal.listing.min_order_qty, deal.listing.max_order_qty
    if (lo is not None and quantity < lo) or (hi is not None and quantity > hi):
        rng = f"{lo or 1}–{hi}" if hi is not None else f"at least {lo}"
        return [
            FieldProblem(
                "quantity", "NEG-V03", f"Quantity {quantity} is outside the order range ({rng})."
            )
        ]
    return []


def check_counter_rules(
    action: str, deal: DealState, terms: Terms, payload: Payload, base: Terms | None
) -> None:
    settings = deal.settings
    problems: list[FieldProblem] = []
    given = set(payload.terms or {})
    if (
        action == "counter"
        and settings.counter_message_required
        and not (payload.message and payload.message.strip())
    ):
        problems.append(
            FieldProblem("message", "NEG-V04", "A counter-offer needs a message explaining it.")
        )
    if terms.lead_time_days is not None and terms.lead_time_days <= 0:
        problems.append(
            FieldProblem("lead_time_days", "NEG-V02", "Lead time must be at least one day.")
        )
    problems += _quantity_bounds(deal, terms.quantity)
    if base is not None and action in ("counter", "revise"):
        # Only the terms the move gives count: an unstated validity renews by itself.
        if not given.intersection(terms.differs_from(base)):
            problems.append(
                FieldProblem(
                    "terms",
                    "CTR-001",
                    "A counter-offer must change at least one term (price, quantity, lead "
                    "time, delivery terms, discount or validity).",
                )
            )
        pct = percent_change(base.unit_price, terms.unit_price)
        if pct is not None and terms.unit_price != base.unit_price:
            if abs(pct) < settings.min_price_change_pct:
                problems.append(
                    FieldProblem(
                        "unit_price",
                        "CTR-002",
                        f"A counter-offer must change the price by at least "
                        f"{_pct(settings.min_price_change_pct)}; {_fmt(terms.unit_price)} is "
                        f"{_pct(pct)} from {_fmt(base.unit_price)}.",
                    )
                )
            elif abs(pct) > settings.max_price_change_pct:
                problems.append(
                    FieldProblem(
                        "unit_price",
                        "NEG-V01",
                        f"A counter-offer must stay within {_pct(settings.max_price_change_pct)} "
                        f"of the current price {_fmt(base.unit_price)}; {_fmt(terms.unit_price)} "
                        f"is {_pct(pct)} {'below' if pct < 0 else 'above'} it.",
                    )
                )
    _refuse(problems)


# --- offer reference ---------------------------------------------------------------------


def check_offer_rules(
    action: str, deal: DealState, terms: Terms, payload: Payload, actor: Actor, now: datetime
) -> None:
    s = deal.settings
    amount = terms.total
    cur = terms.currency
    problems: list[FieldProblem] = []
    if not s.offer_min_amount <= amount <= s.offer_max_amount:
        problems.append(
            FieldProblem(
                "unit_price",
                "OFR-001",
                f"An offer must be between {_fmt(s.offer_min_amount)} and "
                f"{_fmt(s.offer_max_amount)} {cur}; this one totals {_fmt(amount)} {cur}.",
            )
        )
    if terms.unit_price < deal.listing.unit_price * s.min_offer_fraction:
        problems.append(
            FieldProblem(
                "unit_price",
                "OFR-007",
                f"An offer must be at least {_pct(s.min_offer_fraction * 100)} of the asking "
                f"price ({_fmt(deal.listing.unit_price)} {cur}); "
                f"{_fmt(terms.unit_price)} is too low.",
            )
        )
    if deal.state is None:  # the opening offer carries the buyer's details
        message = (payload.message or "").strip()
        if not s.offer_message_min <= len(message) <= s.offer_message_max:
            problems.append(
                FieldProblem(
                    "message",
                    "OFR-002",
                    f"Tell the seller about your offer in {s.offer_message_min} to "
                    f"{s.offer_message_max} characters; this message has {len(message)}.",
                )
            )
        for name in s.offer_required_fields:
            value = payload.data.get(name)
            choices = OFFER_FIELD_CHOICES.get(name)
            if value is None or (choices and value not in choices):
                hint = f" (one of {', '.join(choices)})" if choices else ""
                problems.append(
                    FieldProblem(name, "OFR-003", f"An offer needs {name.replace('_', ' ')}{hint}.")
                )
    _refuse(problems)
    if amount > s.kyc_threshold and not actor.kyc_verified:
        raise VerificationRequired(
            f"Offers above {_fmt(s.kyc_threshold)} {cur} need a verified identity (KYC).",
            rule="OFR-006",
            field="unit_price",
        )
    if amount > s.paid_plan_threshold and actor.plan != "paid":
        raise VerificationRequired(
            f"Offers above {_fmt(s.paid_plan_threshold)} {cur} need a paid plan.",
            rule="OFR-008",
            field="unit_price",
        )
    if (
        s.min_account_age is not None
        and actor.created_at is not None
        and (s.min_account_age.add_to(actor.created_at) > now)
    ):
        raise VerificationRequired(
            f"New accounts can make offers once they are {s.min_account_age.describe()} old.",
            rule="OFR-005",
        )
