"""Rule settings: the numbers behind the rules, and how the most specific one wins.

Defaults come from the reference documents. A process file may override them in its
`[settings]` table; a marketplace may override them again per category, seller, listing
and deal. `Settings.layered(base, category, seller, listing, deal)` applies the layers in
that order, so the most specific wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from dealroom.domain.timeexpr import Period, TimeExprError


@dataclass(frozen=True)
class Settings:
    # --- counter and validation rules (rfq reference) ---
    #: CTR-001…006, NEG-V01…V06, NEG-L01/L02/L05 on or off for the process.
    counter_rules: bool = False
    #: NEG-L01 / CTR-005: proposals are counted in rounds of two (an offer and its answer).
    max_rounds: int | None = None
    #: NEG-L02: quote versions, revisions included.
    max_versions: int | None = None
    #: CTR-002 / NEG-L05: a counter that changes the price moves it at least this much.
    min_price_change_pct: Decimal = Decimal("1")
    #: NEG-V01: and at most this much from the current quote.
    max_price_change_pct: Decimal = Decimal("50")
    #: NEG-V04.
    counter_message_required: bool = True
    #: Sharetribe's limit of transitions in one transaction.
    transition_quota: int = 100

    # --- timing (rfq NEG-T01…T05, offer and market windows) ---
    first_quote_window: Period = Period.parse("PT48H")
    counter_response_window: Period = Period.parse("PT24H")
    max_counter_response_window: Period = Period.parse("PT72H")
    quote_validity: Period = Period.parse("P7D")
    inactivity_timeout: Period = Period.parse("P30D")
    response_window: Period = Period.parse("P7D")
    response_sla: Period = Period.parse("PT24H")
    quote_expiring_notice: Period = Period.parse("PT24H")
    counter_expiring_notice: Period = Period.parse("PT6H")

    # --- offer reference (business-for-sale offers) ---
    offer_rules: bool = False
    offer_min_amount: Decimal = Decimal("1000")
    offer_max_amount: Decimal = Decimal("10000000")
    offer_message_min: int = 50
    offer_message_max: int = 1000
    offer_required_fields: tuple[str, ...] = ("buyer_role", "timeline", "financing")
    kyc_threshold: Decimal = Decimal("50000")
    min_offer_fraction: Decimal = Decimal("0.10")
    paid_plan_threshold: Decimal = Decimal("100000")
    offers_per_day: int = 3
    one_open_offer_per_listing: bool = True
    #: Account age below which a user may not make offers; off unless a marketplace sets it.
    min_account_age: Period | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, base: Settings | None = None) -> Settings:
        """Apply `raw` on top of `base`; raises `SettingsError` listing every bad key."""
        base = base or cls()
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in raw.items():
            f = known.get(key)
            if f is None:
                problems.append(f"{key}: unknown setting")
                continue
            try:
                changes[key] = _coerce(key, getattr(base, key), f.type, value)
            except (ValueError, TypeError, InvalidOperation, TimeExprError) as exc:
                problems.append(f"{key}: {exc}")
        if problems:
            raise SettingsError(problems)
        result = dataclasses.replace(base, **changes)
        result.check()
        return result

    @classmethod
    def layered(cls, base: Settings, *layers: Mapping[str, Any] | None) -> Settings:
        """The most specific layer wins: pass them general → specific."""
        result = base
        for layer in layers:
            if layer:
                if "max_counter_response_window" in layer:
                    # NEG-T05 caps what sellers and listings may set; only the process sets it.
                    raise SettingsError(
                        ["max_counter_response_window: set by the process only (NEG-T05)"]
                    )
                result = cls.from_mapping(layer, base=result)
        return result

    def check(self) -> None:
        """Cross-field limits (NEG-T05 caps the counter window)."""
        if self.counter_response_window.delta > self.max_counter_response_window.delta:
            raise SettingsError(
                [
                    "counter_response_window: may be at most "
                    f"{self.max_counter_response_window.text()} (NEG-T05)"
                ]
            )

    def period(self, name: str) -> Period:
        value = getattr(self, name, None)
        if not isinstance(value, Period):
            raise KeyError(f"setting '{name}' is not a duration")
        return value

    def to_mapping(self) -> dict[str, Any]:
        """JSON-friendly view: periods as ISO text, decimals as strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Period):
                v = v.text()
            elif isinstance(v, Decimal):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


class SettingsError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _coerce(key: str, current: Any, type_text: Any, value: Any) -> Any:
    text = str(type_text)
    if value is None:
        if "None" in text:
            return None
        raise ValueError("may not be empty")
    if "Period" in text:
        if not isinstance(value, str):
            raise ValueError("expected an ISO-8601 duration such as PT24H")
        return Period.parse(value)
    if "bool" in text:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if "Decimal" in text:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("expected a number")
        d = Decimal(str(value))
        if not d.is_finite() or d < 0:
            raise ValueError("expected a finite, non-negative number")
        return d
    if "int" in text:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("expected a non-negative whole number")
        return value
    if "tuple" in text:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of names")
        return tuple(value)
    return value
