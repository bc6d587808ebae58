"""Time expressions: when an automatic transition or a reminder fires.

A small language, written as a string in process files:

    last-entered-state(delivered) + P14D
    min(quote-valid-until, entered + setting(counter_response_window))
    ignore-if-past(booking-start - P1D)

Timepoints: `tx-initiated`, `entered` (the last entry into the state the timer waits in),
`last-move`, `first-entered-state(S)`, `last-entered-state(S)`, `first-transitioned(T)`,
`quote-valid-until`, `quote-created` (when the pending version was made), `booking-start`, `booking-end`, `booking-display-start`,
`booking-display-end`, and `data(KEY)` for any ISO-8601 timestamp in the deal's data.
Durations: ISO-8601 periods (`P7D`, `PT15M`, `P1Y2M`, `P2W`) or `setting(NAME)`, a duration
from the resolved rule settings. Functions: `min(a, b, …)` and `ignore-if-past(x)`.

Evaluation is pure: the caller supplies the facts through `TimeContext`. A timepoint that
is not known yet (a state never entered, no booking) makes the expression yield `None`:
the timer is not scheduled. `min` takes the earliest known operand.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

SIMPLE_TIMEPOINTS = frozenset(
    {
        "tx-initiated",
        "entered",
        "last-move",
        "quote-valid-until",
        "quote-created",
        "booking-start",
        "booking-end",
        "booking-display-start",
        "booking-display-end",
    }
)
ARG_TIMEPOINTS = frozenset(
    {"first-entered-state", "last-entered-state", "first-transitioned", "data"}
)

_PERIOD_RE = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class TimeExprError(ValueError):
    """A time expression that does not parse; the message says where."""


@dataclass(frozen=True)
class Period:
    """An ISO-8601 period: calendar months and exact seconds kept apart."""

    months: int = 0
    delta: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD_RE.match(text)
        if not m or text in ("P", "PT") or text.endswith("T"):
            raise TimeExprError(f"'{text}' is not an ISO-8601 period such as P7D or PT15M")
        g = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
        return cls(
            months=g["years"] * 12 + g["months"],
            delta=timedelta(
                weeks=g["weeks"],
                days=g["days"],
                hours=g["hours"],
                minutes=g["minutes"],
                seconds=g["seconds"],
            ),
        )

    def text(self) -> str:
        out = "P"
        years, months = divmod(self.months, 12)
        if years:
            out += f"{years}Y"
        if months:
            out += f"{months}M"
        days = self.delta.days
        secs = self.delta.seconds
        if days:
            out += f"{days}D"
        if secs:
            h, rem = divmod(secs, 3600)
            mi, s = divmod(rem, 60)
            out += "T" + (f"{h}H" if h else "") + (f"{mi}M" if mi else "") + (f"{s}S" if s else "")
        return out if out != "P" else "PT0S"

    def describe(self) -> str:
        """For people: '30 days', '48 hours', '1 month 2 days'."""
        parts: list[str] = []
        years, months = divmod(self.months, 12)
        secs = int(self.delta.total_seconds())
        days, rest = divmod(secs, 86400)
        if rest and days < 3:  # 48 hours reads better than 2 days 0 hours for windows
            rest += days * 86400
            days = 0
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        for n, unit in ((years, "year"), (months, "month"), (days, "day"), (hours, "hour"),
                        (minutes, "minute"), (seconds, "second")):  # fmt: skip
            if n:
                parts.append(f"{n} {unit}" + ("" if n == 1 else "s"))
        return " ".join(parts) or "no time"

    def add_to(self, when: datetime, sign: int = 1) -> datetime:
        if self.months:
            total = when.year * 12 + (when.month - 1) + sign * self.months
            year, month0 = divmod(total, 12)
            day = min(when.day, calendar.monthrange(year, month0 + 1)[1])
            when = when.replace(year=year, month=month0 + 1, day=day)
        return when + sign * self.delta


class TimeContext(Protocol):
    """The facts a time expression may read."""

    now: datetime
    timer_state: str | None

    def timepoint(self, name: str, arg: str | None) -> datetime | None: ...

    def setting_period(self, name: str) -> Period: ...


# --- the expression tree ---------------------------------------------------------------


@dataclass(frozen=True)
class TimePoint:
    name: str
    arg: str | None = None

    def text(self) -> str:
        return f"{self.name}({self.arg})" if self.arg is not None else self.name

    def evaluate(self, ctx: TimeContext) -> datetime | None:
        return ctx.timepoint(self.name, self.arg)

    def references(self) -> list[tuple[str, str]]:
        return [(self.name, self.arg)] if self.arg is not None else []


@dataclass(frozen=True)
class Duration:
    """A fixed period or a named setting resolved at evaluation time."""

    period: Period | None = None
    setting: str | None = None

    def text(self) -> str:
        return self.period.text() if self.period else f"setting({self.setting})"

    def resolve(self, ctx: TimeContext) -> Period:
        if self.period is not None:
            return self.period
        assert self.setting is not None
        return ctx.setting_period(self.setting)


@dataclass(frozen=True)
class Shift:
    base: Expr
    sign: int
    duration: Duration

    def text(self) -> str:
        return f"{self.base.text()} {'+' if self.sign > 0 else '-'} {self.duration.text()}"

    def evaluate(self, ctx: TimeContext) -> datetime | None:
        when = self.base.evaluate(ctx)
        return None if when is None else self.duration.resolve(ctx).add_to(when, self.sign)

    def references(self) -> list[tuple[str, str]]:
        return self.base.references()


@dataclass(frozen=True)
class Earliest:
    items: tuple[Expr, ...]

    def text(self) -> str:
        return "min(" + ", ".join(i.text() for i in self.items) + ")"

    def evaluate(self, ctx: TimeContext) -> datetime | None:
        known = [w for w in (i.evaluate(ctx) for i in self.items) if w is not None]
        return min(known) if known else None

    def references(self) -> list[tuple[str, str]]:
        return [r for i in self.items for r in i.references()]


@dataclass(frozen=True)
class IgnoreIfPast:
    inner: Expr

    def text(self) -> str:
        return f"ignore-if-past({self.inner.text()})"

    def evaluate(self, ctx: TimeContext) -> datetime | None:
        when = self.inner.evaluate(ctx)
        return None if when is None or when < ctx.now else when

    def references(self) -> list[tuple[str, str]]:
        return self.inner.references()


Expr = TimePoint | Shift | Earliest | IgnoreIfPast


# --- the parser --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<word>[A-Za-z_][A-Za-z0-9_.\-/:]*)|(?P<sym>[(),+\-]))")


def _tokenize(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m:
            rest = text[pos:]
            column = pos + len(rest) - len(rest.lstrip()) + 1
            raise TimeExprError(f"unexpected '{rest.strip()[:12]}' at column {column}")
        word = m.group("word")
        if word is not None:
            # A hyphenated name swallows a following '-' only when a name character follows,
            # so `entered - P1D` reads as a subtraction.
            word = word.rstrip("-")
            tokens.append((word, m.start("word")))
            pos = m.start("word") + len(word)
        else:
            tokens.append((m.group("sym"), m.start("sym")))
            pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise TimeExprError(
                f"'{self.text}' ends early" + (f"; expected '{expected}'" if expected else "")
            )
        tok, col = self.tokens[self.i]
        if expected is not None and tok != expected:
            raise TimeExprError(f"expected '{expected}' at column {col + 1}, found '{tok}'")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.additive()
        if self.peek() is not None:
            tok, col = self.tokens[self.i]
            raise TimeExprError(f"unexpected '{tok}' at column {col + 1}")
        return expr

    def additive(self) -> Expr:
        expr: Expr = self.primary()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            expr = Shift(expr, sign, self.duration())
        return expr

    def duration(self) -> Duration:
        tok = self.take()
        if tok == "setting":
            self.take("(")
            name = self.take()
            self.take(")")
            return Duration(setting=name)
        return Duration(period=Period.parse(tok))

    def primary(self) -> Expr:
        tok = self.take()
        if tok == "min":
            self.take("(")
            items = [self.additive()]
            while self.peek() == ",":
                self.take(",")
                items.append(self.additive())
            self.take(")")
            return Earliest(tuple(items))
        if tok == "ignore-if-past":
            self.take("(")
            inner = self.additive()
            self.take(")")
            return IgnoreIfPast(inner)
        if tok in SIMPLE_TIMEPOINTS:
            return TimePoint(tok)
        if tok in ARG_TIMEPOINTS:
            self.take("(")
            arg = self.take()
            self.take(")")
            return TimePoint(tok, arg)
        known = ", ".join(sorted(SIMPLE_TIMEPOINTS | ARG_TIMEPOINTS))
        raise TimeExprError(f"unknown timepoint '{tok}' (known: {known}, min, ignore-if-past)")


def parse(text: str) -> Expr:
    """Parse a time expression; raises `TimeExprError` naming the problem."""
    if not text or not text.strip():
        raise TimeExprError("empty time expression")
    return _Parser(text).parse()
