"""Numbers, money and times as the viewer reads them: their locale and their timezone.

Babel carries the CLDR data (digit grouping, decimal marks, month names, 12- or 24-hour
clocks, relative times) for every locale a user may have; the standard library has none
of it. Money always shows its currency: an ISO code standing next to a digit gets a
no-break space, which CLDR's currency spacing asks for and Babel leaves out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, format_timedelta
from babel.numbers import format_currency, format_decimal

from dealroom.domain.timestamps import iso

DEFAULT_LOCALE = "en"
_CODE_BEFORE_DIGIT = re.compile(r"([A-Z]{3})(?=[-\d\u0660-\u0669\u06f0-\u06f9\u200f\u200e])")
_CODE_AFTER_DIGIT = re.compile(r"(?<=[\d\u0660-\u0669\u06f0-\u06f9])([A-Z]{3})")


def parse_locale(value: str | None) -> Locale:
    """A Babel locale for `value` (`en`, `de_DE`, `ar-SA`), English when unknown."""
    if value:
        try:
            return Locale.parse(value.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    return Locale.parse(DEFAULT_LOCALE)


def locale_from_header(header: str | None) -> Locale:
    """The first locale of an Accept-Language header Babel knows (visitors have no
    account to say it)."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip()
        if tag and tag != "*":
            try:
                return Locale.parse(tag.replace("-", "_"))
            except (UnknownLocaleError, ValueError, TypeError):
                continue
    return Locale.parse(DEFAULT_LOCALE)


def parse_zone(value: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(value or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Formatter:
    """Formatting for one viewer; templates get it as `fmt`."""

    locale: Locale
    zone: ZoneInfo
    now: datetime

    @property
    def direction(self) -> str:
        return "rtl" if self.locale.character_order == "right-to-left" else "ltr"

    @property
    def lang(self) -> str:
        return str(self.locale).replace("_", "-")

    @property
    def zone_name(self) -> str:
        return self.zone.key

    # --- numbers ---------------------------------------------------------------------

    def money(self, amount: Any, currency: str | None) -> str:
        """`SAR 47,000.00`, `$0.0125`, `47.000,00 SAR`: never a bare number."""
        value = as_decimal(amount)
        if value is None:
            return "—"
        code = (currency or "").upper() or "XXX"
        text = format_currency(value, code, locale=self.locale, decimal_quantization=False)
        text = _CODE_BEFORE_DIGIT.sub("\\1\u00a0", text)
        return _CODE_AFTER_DIGIT.sub("\u00a0\\1", text)

    def number(self, value: Any) -> str:
        d = as_decimal(value)
        if d is None:
            return "—"
        return format_decimal(d, locale=self.locale, decimal_quantization=False)

    def percent(self, value: Any, *, signed: bool = False) -> str:
        """A percentage given as a number of percent ("-6.00" → "−6%")."""
        d = as_decimal(value)
        if d is None:
            return "—"
        d = d.normalize() if d == d.to_integral_value() else d
        text = format_decimal(abs(d), format="#,##0.##", locale=self.locale)
        sign = ("+" if d > 0 else "−" if d < 0 else "") if signed else ("−" if d < 0 else "")
        return f"{sign}{text}%"

    def days(self, value: Any, *, signed: bool = False) -> str:
        d = as_decimal(value)
        if d is None:
            return "—"
        n = int(d)
        unit = "day" if abs(n) == 1 else "days"
        sign = ("+" if n > 0 else "−" if n < 0 else "") if signed else ("−" if n < 0 else "")
        return f"{sign}{format_decimal(abs(n), locale=self.locale)} {unit}"

    # --- times -----------------------------------------------------------------------

    def local(self, value: Any) -> datetime | None:
        t = as_time(value)
        return None if t is None else t.astimezone(self.zone)

    def datetime(self, value: Any) -> str:
        """Date and time in the viewer's zone: `Feb 1, 2026, 12:00 PM` (en),
        `1 févr. 2026, 12:00` (fr)."""
        t = self.local(value)
        if t is None:
            return "—"
        date = format_date(t, "medium", locale=self.locale)
        time = format_time(t, "short", locale=self.locale)
        pattern = str(self.locale.datetime_formats.get("medium", "{1}, {0}"))
        return pattern.replace("{1}", date).replace("{0}", time)

    def date(self, value: Any) -> str:
        t = self.local(value)
        return "—" if t is None else format_date(t, "medium", locale=self.locale)

    def time(self, value: Any) -> str:
        t = self.local(value)
        return "—" if t is None else format_time(t, "short", locale=self.locale)

    def stamp(self, value: Any) -> str:
        """Audit timestamps, to the second, as the rfq reference's timeline shows them."""
        t = self.local(value)
        return "—" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")

    def relative(self, value: Any) -> str:
        """`in 23 hours`, `5 minutes ago`."""
        t = as_time(value)
        if t is None:
            return ""
        return format_timedelta(t - self.now, add_direction=True, threshold=1.0, locale=self.locale)

    def shift(self, old: Any, new: Any) -> str:
        """How far a time moved: `+2 days`, `−3 hours`."""
        a, b = as_time(old), as_time(new)
        if a is None or b is None:
            return "changed"
        delta = b - a
        size = format_timedelta(abs(delta), threshold=1.0, locale=self.locale)
        return ("+" if delta.total_seconds() >= 0 else "−") + size

    def iso(self, value: Any) -> str:
        t = as_time(value)
        return "" if t is None else iso(t)

    def input_value(self, value: Any) -> str:
        """A `datetime-local` input's value in the viewer's zone."""
        t = self.local(value)
        return "" if t is None else t.strftime("%Y-%m-%dT%H:%M")

    def is_past(self, value: Any) -> bool:
        t = as_time(value)
        return t is not None and t <= self.now


def formatter(locale: str | Locale | None, zone: str | None, now: datetime) -> Formatter:
    loc = locale if isinstance(locale, Locale) else parse_locale(locale)
    return Formatter(loc, parse_zone(zone), now)
