"""Quote versions: immutable proposals of terms, their totals and their differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dealroom.domain.timestamps import iso

# ISO 4217 minor units that differ from two; everything else has cents.
_MINOR_UNITS = {
    "BHD": 3, "CLP": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3,
    "LYD": 3, "OMR": 3, "PYG": 0, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
}  # fmt: skip

STATUSES = ("pending", "accepted", "rejected", "countered", "withdrawn", "expired", "superseded")
#: A version's status only moves forward: from pending to one of the others, never back.
FINAL_STATUSES = frozenset(STATUSES) - {"pending"}

CHANGE_REASONS = (
    "initial",
    "seller_revision",
    "buyer_counter",
    "price_adjustment",
    "quantity_change",
    "terms_change",
    "validity_extension",
)

TERM_FIELDS = (
    "unit_price",
    "quantity",
    "discount_percent",
    "lead_time_days",
    "delivery_terms",
    "valid_until",
    "notes",
)


def minor_unit(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up, as invoices do."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def at_least_cents(d: Decimal) -> Decimal:
    """Exact value with no trailing zeros past the cents: 50 -> 50.00, 0.012500 -> 0.0125."""
    q = d.normalize()
    exponent = q.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return q.quantize(Decimal("0.01"))
    return q


def percent_change(old: Decimal, new: Decimal) -> Decimal | None:
    if old == 0:
        return None
    return ((new - old) / old * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Terms:
    unit_price: Decimal
    quantity: int
    currency: str
    lead_time_days: int | None = None
    delivery_terms: str | None = None
    valid_until: datetime | None = None
    discount_percent: Decimal | None = None
    notes: str | None = None

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def discount(self) -> Decimal:
        if not self.discount_percent:
            return money(Decimal(0), self.currency)
        return money(self.subtotal * self.discount_percent / 100, self.currency)

    @property
    def total(self) -> Decimal:
        return money(self.subtotal, self.currency) - self.discount

    def differs_from(self, other: Terms) -> list[str]:
        return [f for f in TERM_FIELDS if getattr(self, f) != getattr(other, f)]

    def to_json(self) -> dict[str, Any]:
        return {
            "unit_price": str(self.unit_price),
            "quantity": self.quantity,
            "total_price": str(self.total),
            "currency": self.currency,
            "discount_percent": _opt_str(self.discount_percent),
            "lead_time_days": self.lead_time_days,
            "delivery_terms": self.delivery_terms,
            "valid_until": iso(self.valid_until) if self.valid_until else None,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class QuoteVersion:
    number: int
    terms: Terms
    created_by_role: str
    created_at: datetime
    change_reason: str
    status: str = "pending"
    message: str | None = None
    #: Change from the same party's previous version (its concession), or from the version
    #: before it for a party's first proposal.
    price_change_pct: Decimal | None = None
    lead_time_change_days: int | None = None
    #: Whether this version opened a new exchange (initial or counter), as opposed to a
    #: revision that replaced a pending version.
    is_proposal: bool = True

    def with_status(self, status: str) -> QuoteVersion:
        if status not in STATUSES:
            raise ValueError(f"unknown quote status {status!r}")
        if self.status != "pending" and status != self.status:
            raise ValueError(f"version {self.number} is {self.status}; its status cannot change")
        return replace(self, status=status)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "created_by_role": self.created_by_role,
            **self.terms.to_json(),
            "change_reason": self.change_reason,
            "price_change_pct": _opt_str(self.price_change_pct),
            "lead_time_change_days": self.lead_time_change_days,
            "status": self.status,
            "message": self.message,
            "created_at": iso(self.created_at),
        }


def pending_version(versions: Sequence[QuoteVersion]) -> QuoteVersion | None:
    """The version on the table awaiting an answer: the latest pending one."""
    return next((v for v in reversed(versions) if v.status == "pending"), None)


def accepted_version(versions: Sequence[QuoteVersion]) -> QuoteVersion | None:
    return next((v for v in versions if v.status == "accepted"), None)


def _opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def change_from(previous: QuoteVersion | None, terms: Terms) -> tuple[Decimal | None, int | None]:
    if previous is None:
        return None, None
    pct = percent_change(previous.terms.unit_price, terms.unit_price)
    lead = (
        terms.lead_time_days - previous.terms.lead_time_days
        if terms.lead_time_days is not None and previous.terms.lead_time_days is not None
        else None
    )
    return pct, lead


# --- differences between two versions ------------------------------------------------------


@dataclass(frozen=True)
class Change:
    field: str
    old_value: Any
    new_value: Any
    percent_change: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "old_value": _jsonable(self.old_value),
            "new_value": _jsonable(self.new_value),
            "percent_change": _opt_str(self.percent_change),
        }


@dataclass(frozen=True)
class VersionDiff:
    from_version: int
    to_version: int
    changes: tuple[Change, ...]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "changes": [c.to_json() for c in self.changes],
            "summary": self.summary,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    return value


def _pct_text(p: Decimal) -> str:
    text = f"{abs(p):f}".rstrip("0").rstrip(".") if "." in f"{abs(p):f}" else f"{abs(p)}"
    return text + "%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def diff(old: QuoteVersion, new: QuoteVersion) -> VersionDiff:
    """Per-field old/new/percent and a human summary ("Price reduced 6%, …")."""
    a, b = old.terms, new.terms
    changes: list[Change] = []
    phrases: list[str] = []
    numeric = {
        "unit_price": (a.unit_price, b.unit_price),
        "quantity": (Decimal(a.quantity), Decimal(b.quantity)),
        "total_price": (a.total, b.total),
        "discount_percent": (a.discount_percent, b.discount_percent),
        "lead_time_days": (a.lead_time_days, b.lead_time_days),
    }
    for name, (x, y) in numeric.items():
        if x == y:
            continue
        pct = percent_change(Decimal(x), Decimal(y)) if x is not None and y is not None else None
        old_v: Any = a.quantity if name == "quantity" else x
        new_v: Any = b.quantity if name == "quantity" else y
        changes.append(Change(name, old_v, new_v, pct))
        if name == "unit_price" and pct is not None:
            phrases.append(f"price {'reduced' if pct < 0 else 'increased'} {_pct_text(pct)}")
        elif name == "quantity":
            verb = "reduced" if b.quantity < a.quantity else "increased"
            phrases.append(f"quantity {verb} from {a.quantity} to {b.quantity}")
        elif name == "lead_time_days" and x is not None and y is not None:
            days = int(y) - int(x)
            verb = "reduced" if days < 0 else "increased"
            phrases.append(f"lead time {verb} {_plural(abs(days), 'day')}")
        elif name == "lead_time_days":
            phrases.append(
                f"lead time set to {_plural(int(y), 'day')}"
                if y is not None
                else "lead time removed"
            )
        elif name == "discount_percent":
            phrases.append(f"discount {'removed' if not y else f'set to {y}%'}")
    for name in ("delivery_terms", "valid_until", "notes"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            changes.append(Change(name, x, y))
            label = {"delivery_terms": "delivery terms", "notes": "notes"}
            # Validity moves with every new version, so the summary leaves it to `changes`.
            if name != "valid_until":
                phrases.append(f"{label[name]} changed")
    summary = ", ".join(phrases) if phrases else "No change"
    summary = summary[0].upper() + summary[1:]
    return VersionDiff(old.number, new.number, tuple(changes), summary)
