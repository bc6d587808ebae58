"""The forms behind the action buttons: which fields a transition asks for, and how a
posted form becomes the engine's `Payload`.

Fields are named as in the API (`unit_price`, `quantity`, `lead_time_days`,
`delivery_terms`, `valid_until`, `discount_percent`, `notes`, `message`, `reason`), so a
refusal's `field` points at the input it concerns. What a transition asks for follows from
its actions, not from its name: any process file gets working forms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import NumberFormatError, parse_decimal
from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.actions import VERSION_ACTIONS
from dealroom.domain.errors import InvalidRequest
from dealroom.domain.model import Process, Transition
from dealroom.domain.quotes import TERM_FIELDS
from dealroom.domain.rules import OFFER_FIELD_CHOICES
from dealroom.domain.settings import Settings
from dealroom.domain.state import Payload
from dealroom.web.formatting import Formatter

ANSWER_WORDS = ("reject", "decline", "cancel", "withdraw")
POSITIVE = ("accept", "confirm", "buy-now", "complete", "deliver", "mark-delivered")
CHOICE_LABELS = {
    "individual": "An individual",
    "company": "A company",
    "investor": "An investor",
    "immediate": "Immediately",
    "30days": "Within 30 days",
    "60days": "Within 60 days",
    "cash": "Cash",
    "sba_loan": "SBA loan",
    "seller_financing": "Seller financing",
}
FIELD_LABELS = {"buyer_role": "You are buying as", "timeline": "Timeline", "financing": "Financing"}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str  # money, int, percent, text, textarea, datetime, select, checkbox
    value: str = ""
    required: bool = False
    hint: str = ""
    suffix: str = ""
    options: tuple[tuple[str, str], ...] = ()
    wide: bool = False


@dataclass(frozen=True)
class ActionForm:
    name: str
    title: str
    tone: str  # primary, danger, neutral
    fields: tuple[Field, ...]
    blurb: str = ""

    @property
    def has_terms(self) -> bool:
        return any(f.name in TERM_FIELDS for f in self.fields)


def title_of(process: Process, name: str) -> str:
    t = process.transitions.get(name)
    return (t.title if t is not None and t.title else None) or name.replace("-", " ").capitalize()


def tone_of(t: Transition) -> str:
    if any(w in t.name for w in ANSWER_WORDS) or "reject-quote" in t.actions:
        return "danger"
    if any(t.name == w or t.name.endswith(w) for w in POSITIVE) or "accept-quote" in t.actions:
        return "primary"
    return "neutral"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def action_form(
    process: Process,
    name: str,
    *,
    role: str,
    settings: Settings,
    currency: str,
    terms: dict[str, Any] | None,
    fmt: Formatter,
) -> ActionForm:
    """The form for transition `name`, prefilled with `terms` (the terms on the table, or
    the listing's for an opening move)."""
    t = process.transitions[name]
    actions = set(t.actions)
    terms = terms or {}
    fields: list[Field] = []
    blurb = ""
    if actions & VERSION_ACTIONS:
        if not t.listing_price:
            fields.append(
                Field("unit_price", "Unit price", "money", _text(terms.get("unit_price")),
                      required=True, suffix=currency)
            )  # fmt: skip
        fields.append(Field("quantity", "Quantity", "int", _text(terms.get("quantity")), True))
        if not t.listing_price:
            fields += [
                Field("lead_time_days", "Lead time", "int", _text(terms.get("lead_time_days")),
                      suffix="days"),
                Field("discount_percent", "Discount", "percent",
                      _text(terms.get("discount_percent")), suffix="%"),
                Field("delivery_terms", "Delivery terms", "text",
                      _text(terms.get("delivery_terms")), hint="e.g. DAP Riyadh, FOB Jebel Ali"),
                Field("valid_until", "Valid until", "datetime",
                      hint=f"Your time ({fmt.zone_name}). Empty: "
                      f"{_period(settings.quote_validity.delta.days)} from now."),
                Field("notes", "Notes on the terms", "textarea", wide=True),
            ]  # fmt: skip
        if t.listing_price:
            blurb = "At the listed price; choose the quantity."
    elif "open-request" in actions:
        fields += [
            Field("quantity", "Quantity needed", "int", _text(terms.get("quantity")), True),
            Field("lead_time_days", "Needed within", "int", suffix="days"),
            Field("notes", "Specification notes", "textarea", wide=True),
        ]
    if settings.offer_rules and "propose" in actions and role == "buyer" and t.initial:
        for key in settings.offer_required_fields:
            choices = OFFER_FIELD_CHOICES.get(key, ())
            fields.append(
                Field(key, FIELD_LABELS.get(key, key.replace("_", " ").capitalize()), "select",
                      required=True,
                      options=tuple((c, CHOICE_LABELS.get(c, c)) for c in choices))
            )  # fmt: skip
    if "request-close" in actions:
        fields.append(
            Field("escrow_waived", "Waive escrow (the buyer pays you directly)", "checkbox",
                  hint="Leave unticked to hold the payment in escrow until delivery.")
        )  # fmt: skip
    if {"post-review-by-buyer", "post-review-by-seller"} & actions:
        fields += [
            Field("reviewRating", "Rating", "select", "5", True,
                  options=tuple((str(n), "★" * n) for n in range(5, 0, -1))),
            Field("reviewContent", "Review", "textarea", wide=True),
        ]  # fmt: skip
    if any(w in name for w in ANSWER_WORDS) or actions & {"reject-quote", "withdraw-quote"}:
        fields.append(Field("reason", "Reason", "text", hint="Optional; the other party sees it."))
    message_required = ("counter" in actions and settings.counter_rules and
                        settings.counter_message_required)  # fmt: skip
    hint = ""
    if settings.offer_rules and "propose" in actions and t.initial:
        message_required = True
        hint = f"{settings.offer_message_min} to {settings.offer_message_max} characters."
    fields.append(
        Field("message", "Message to the other party", "textarea", required=message_required,
              hint=hint or ("Required: say why." if message_required else "Optional."),
              wide=True)
    )  # fmt: skip
    return ActionForm(name, title_of(process, name), tone_of(t), tuple(fields), blurb)


def _period(days: int) -> str:
    return f"{days} day" + ("" if days == 1 else "s")


def with_values(form: ActionForm, values: dict[str, str]) -> ActionForm:
    """The same form holding what the user typed (a refused move keeps it)."""
    fields = tuple(
        replace(f, value=("on" if values.get(f.name) else "") if f.kind == "checkbox"
                else values.get(f.name, ""))
        for f in form.fields
    )  # fmt: skip
    return replace(form, fields=fields)


# --- posted form → payload -----------------------------------------------------------


def _number(raw: str, fmt: Formatter) -> str:
    """Digits as the viewer types them (`1,234.5` in en, `1.234,5` in de) → `1234.5`.
    Anything unreadable goes on as typed, so the engine names the field."""
    try:
        return str(parse_decimal(raw, locale=fmt.locale, strict=False))
    except (NumberFormatError, ValueError):
        return raw


def _integer(raw: str, fmt: Formatter) -> Any:
    value = _number(raw, fmt)
    try:
        d = Decimal(value)
    except ArithmeticError:
        return raw
    return int(d) if d == d.to_integral_value() and abs(d) < 10**12 else raw


def _when(raw: str, fmt: Formatter) -> str:
    """A `datetime-local` value is wall time in the viewer's zone."""
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if t.tzinfo is None:
        t = t.replace(tzinfo=fmt.zone)
    return t.isoformat()


def payload_from(form: ActionForm, posted: dict[str, str], fmt: Formatter) -> Payload:
    terms: dict[str, Any] = {}
    data: dict[str, Any] = {}
    message = reason = None
    for f in form.fields:
        raw = posted.get(f.name, "").strip()
        if f.kind == "checkbox":
            data[f.name] = bool(raw)
            continue
        if not raw or f.name == "buyer_email":
            continue
        if f.name == "message":
            message = raw
        elif f.name == "reason":
            reason = raw
        elif f.name in TERM_FIELDS:
            if f.kind in ("money", "percent"):
                terms[f.name] = _number(raw, fmt)
            elif f.kind == "int":
                terms[f.name] = _integer(raw, fmt)
            elif f.kind == "datetime":
                terms[f.name] = _when(raw, fmt)
            else:
                terms[f.name] = raw
        elif f.name == "reviewRating":
            data[f.name] = _integer(raw, fmt)
        else:
            data[f.name] = raw
    return Payload(terms=terms or None, message=message, reason=reason, data=data)


def typed_values(form: ActionForm, posted: dict[str, str]) -> dict[str, str]:
    return {f.name: posted.get(f.name, "") for f in form.fields}


# --- an operator opening a deal for a buyer (an auction win) -------------------------


def with_buyer(form: ActionForm) -> ActionForm:
    buyer = Field("buyer_email", "Winning buyer's email", "email", required=True)
    return replace(form, fields=(buyer, *form.fields))


def buyer_id_from(session: Session, email: str) -> str:
    address = email.strip().lower()
    user_id = session.execute(
        select(m.User.id).where(m.User.email == address, m.User.deleted_at.is_(None))
    ).scalar_one_or_none()
    if user_id is None:
        raise InvalidRequest("No user has this email address.", field="buyer_email")
    return str(user_id)
