"""Time expressions: the small language of timers and reminders, parsed and evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from dealroom.domain.timeexpr import (
    Duration,
    Earliest,
    IgnoreIfPast,
    Period,
    Shift,
    TimeContext,
    TimeExprError,
    TimePoint,
    parse,
)

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeContext:
    """A TimeContext with the facts given as plain dicts."""

    now: datetime = NOW
    timer_state: str | None = "quote-pending"
    points: dict[tuple[str, str | None], datetime] = field(default_factory=dict)
    settings: dict[str, Period] = field(default_factory=dict)

    def timepoint(self, name: str, arg: str | None) -> datetime | None:
        return self.points.get((name, arg))

    def setting_period(self, name: str) -> Period:
        return self.settings[name]


def ctx(**points: datetime) -> FakeContext:
    return FakeContext(points={(k.replace("_", "-"), None): v for k, v in points.items()})


def test_fake_context_satisfies_the_protocol():
    context: TimeContext = FakeContext()
    assert context.timepoint("entered", None) is None


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("entered", TimePoint("entered")),
        ("tx-initiated", TimePoint("tx-initiated")),
        ("last-move", TimePoint("last-move")),
        ("quote-valid-until", TimePoint("quote-valid-until")),
        ("quote-created", TimePoint("quote-created")),
        ("booking-start", TimePoint("booking-start")),
        ("booking-display-end", TimePoint("booking-display-end")),
        ("first-entered-state(delivered)", TimePoint("first-entered-state", "delivered")),
        ("last-entered-state(delivered)", TimePoint("last-entered-state", "delivered")),
        ("first-transitioned(send-quote)", TimePoint("first-transitioned", "send-quote")),
        ("data(paid_at)", TimePoint("data", "paid_at")),
        ("entered + P7D", Shift(TimePoint("entered"), 1, Duration(Period.parse("P7D")))),
        ("entered - PT1H", Shift(TimePoint("entered"), -1, Duration(Period.parse("PT1H")))),
        (
            "last-entered-state(delivered) + P14D",
            Shift(TimePoint("last-entered-state", "delivered"), 1, Duration(Period.parse("P14D"))),
        ),
        (
            "entered + setting(counter_response_window)",
            Shift(TimePoint("entered"), 1, Duration(setting="counter_response_window")),
        ),
        (
            "entered + P1D - PT2H",
            Shift(
                Shift(TimePoint("entered"), 1, Duration(Period.parse("P1D"))),
                -1,
                Duration(Period.parse("PT2H")),
            ),
        ),
        (
            "min(quote-valid-until, entered + setting(counter_response_window))",
            Earliest(
                (
                    TimePoint("quote-valid-until"),
                    Shift(TimePoint("entered"), 1, Duration(setting="counter_response_window")),
                )
            ),
        ),
        (
            "ignore-if-past(booking-start - P1D)",
            IgnoreIfPast(Shift(TimePoint("booking-start"), -1, Duration(Period.parse("P1D")))),
        ),
        ("  entered   +   P7D  ", Shift(TimePoint("entered"), 1, Duration(Period.parse("P7D")))),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_form_of_time_expression_parses(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "entered",
        "entered + P7D",
        "last-entered-state(delivered) + P14D",
        "min(quote-valid-until, entered + setting(counter_response_window))",
        "ignore-if-past(booking-start - P1D)",
        "min(data(a), ignore-if-past(first-transitioned(t) + P1Y2M), last-move + PT90S)",
    ],
)
def test_text_of_a_parsed_expression_parses_back_to_the_same_tree(text):
    expr = parse(text)
    assert parse(expr.text()) == expr


def test_references_name_the_states_and_transitions_an_expression_reads():
    expr = parse(
        "min(last-entered-state(delivered) + P1D, ignore-if-past(first-transitioned(pay)), entered)"
    )
    assert expr.references() == [("last-entered-state", "delivered"), ("first-transitioned", "pay")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty time expression"),
        ("   ", "empty time expression"),
        ("entered +", "'entered +' ends early"),
        ("entered + setting(x", "ends early; expected ')'"),
        ("entered + P7X", "'P7X' is not an ISO-8601 period"),
        ("entered + 7 days", "unexpected '7 days'"),
        ("bogus + P1D", "unknown timepoint 'bogus'"),
        ("entered P1D", "unexpected 'P1D' at column 9"),
        ("min(entered P1D)", "expected ')' at column 13, found 'P1D'"),
        ("first-entered-state + P1D", "expected '(' at column 21, found '+'"),
        ("ignore-if-past entered", "expected '(' at column 16, found 'entered'"),
    ],
)
def test_parse_errors_name_the_problem_and_where(text, message):
    with pytest.raises(TimeExprError) as err:
        parse(text)
    assert message in str(err.value)


def test_unknown_timepoint_error_lists_the_known_ones():
    with pytest.raises(TimeExprError) as err:
        parse("deadline")
    assert "known: " in str(err.value)
    assert "quote-valid-until" in str(err.value)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("entered + P1D $", 15),  # the '$' is the 15th character
        ("entered * 2", 9),  # the '*' is the 9th
        ("entered + 7 days", 11),  # the '7' is the 11th
        ("entered?", 8),
    ],
)
def test_unexpected_character_error_names_its_column(text, column):
    with pytest.raises(TimeExprError) as err:
        parse(text)
    assert f"at column {column}" in str(err.value), str(err.value)


# --- evaluation ---------------------------------------------------------------------------


def test_timepoint_evaluates_to_the_context_fact():
    entered = NOW - timedelta(hours=3)
    assert parse("entered").evaluate(ctx(entered=entered)) == entered


def test_timepoint_with_argument_reads_the_argument():
    when = datetime(2026, 1, 5, tzinfo=UTC)
    c = FakeContext(points={("last-entered-state", "delivered"): when})
    assert parse("last-entered-state(delivered) + P14D").evaluate(c) == when + timedelta(days=14)
    assert parse("last-entered-state(accepted) + P14D").evaluate(c) is None


def test_shift_adds_and_subtracts_periods():
    entered = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    c = ctx(entered=entered)
    assert parse("entered + PT48H").evaluate(c) == datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    assert parse("entered - PT6H").evaluate(c) == datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
    assert parse("entered + P1D - PT2H").evaluate(c) == datetime(2026, 2, 2, 7, 0, tzinfo=UTC)


def test_setting_durations_are_resolved_from_the_context():
    entered = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    c = ctx(entered=entered)
    c.settings["counter_response_window"] = Period.parse("PT24H")
    expr = parse("entered + setting(counter_response_window)")
    assert expr.evaluate(c) == entered + timedelta(hours=24)


def test_shift_of_an_unknown_timepoint_is_unknown():
    assert parse("booking-start - P1D").evaluate(ctx()) is None


def test_min_takes_the_earliest_operand():
    valid = datetime(2026, 2, 8, tzinfo=UTC)
    entered = datetime(2026, 2, 2, 9, tzinfo=UTC)
    c = ctx(quote_valid_until=valid, entered=entered)
    c.settings["w"] = Period.parse("PT24H")
    assert parse("min(quote-valid-until, entered + setting(w))").evaluate(c) == entered + timedelta(
        hours=24
    )
    c.settings["w"] = Period.parse("P30D")
    assert parse("min(quote-valid-until, entered + setting(w))").evaluate(c) == valid


def test_min_skips_unknown_operands():
    entered = datetime(2026, 2, 2, 9, tzinfo=UTC)
    c = ctx(entered=entered)
    expr = parse("min(quote-valid-until, data(missing), entered + P1D)")
    assert expr.evaluate(c) == entered + timedelta(days=1)


def test_min_of_only_unknown_operands_is_unknown():
    assert parse("min(quote-valid-until, data(missing))").evaluate(ctx()) is None


def test_ignore_if_past_drops_a_time_already_gone():
    c = ctx(booking_start=NOW + timedelta(hours=12))
    assert parse("ignore-if-past(booking-start - P1D)").evaluate(c) is None


def test_ignore_if_past_keeps_a_future_time():
    c = ctx(booking_start=NOW + timedelta(days=3))
    assert parse("ignore-if-past(booking-start - P1D)").evaluate(c) == NOW + timedelta(days=2)


def test_ignore_if_past_keeps_a_time_that_is_exactly_now():
    c = ctx(booking_start=NOW + timedelta(days=1))
    assert parse("ignore-if-past(booking-start - P1D)").evaluate(c) == NOW


def test_ignore_if_past_of_unknown_is_unknown():
    assert parse("ignore-if-past(booking-start)").evaluate(ctx()) is None


def test_months_in_a_shift_clamp_to_the_end_of_the_month():
    c = FakeContext(points={("data", "renewal"): datetime(2026, 1, 31, 10, tzinfo=UTC)})
    assert parse("data(renewal) + P1M").evaluate(c) == datetime(2026, 2, 28, 10, tzinfo=UTC)


# --- periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "months", "delta"),
    [
        ("P7D", 0, timedelta(days=7)),
        ("PT15M", 0, timedelta(minutes=15)),
        ("PT48H", 0, timedelta(hours=48)),
        ("PT90S", 0, timedelta(seconds=90)),
        ("P2W", 0, timedelta(weeks=2)),
        ("P1Y2M", 14, timedelta(0)),
        ("P1M", 1, timedelta(0)),
        ("P1DT12H", 0, timedelta(days=1, hours=12)),
        ("P1Y2M3DT4H5M6S", 14, timedelta(days=3, hours=4, minutes=5, seconds=6)),
        ("PT0S", 0, timedelta(0)),
    ],
)
def test_period_parses_iso_8601_durations(text, months, delta):
    assert Period.parse(text) == Period(months=months, delta=delta)


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "7D", "p7d", "P1.5D", "P-1D", " P7D", "P7"]
)
def test_period_refuses_what_is_not_an_iso_8601_duration(text):
    with pytest.raises(TimeExprError) as err:
        Period.parse(text)
    assert f"'{text}' is not an ISO-8601 period" in str(err.value)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("P7D", "P7D"),
        ("PT15M", "PT15M"),
        ("P1Y2M", "P1Y2M"),
        ("P13M", "P1Y1M"),
        ("P2W", "P14D"),
        ("PT36H", "P1DT12H"),
        ("PT90S", "PT1M30S"),
        ("P1DT12H", "P1DT12H"),
        ("PT0S", "PT0S"),
        ("P0D", "PT0S"),
    ],
)
def test_period_text_is_canonical_and_parses_back(text, canonical):
    period = Period.parse(text)
    assert period.text() == canonical
    assert Period.parse(period.text()) == period


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), "P1M", datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), "P1M", datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), "P1M", datetime(2026, 4, 30, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), "P1M", datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P1Y", datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2026, 1, 31, 9, tzinfo=UTC), "P1M1D", datetime(2026, 3, 1, 9, tzinfo=UTC)),
        (datetime(2026, 2, 1, 9, tzinfo=UTC), "PT48H", datetime(2026, 2, 3, 9, tzinfo=UTC)),
    ],
)
def test_period_add_to_moves_months_by_the_calendar_and_clamps(start, period, expected):
    assert Period.parse(period).add_to(start) == expected


def test_period_add_to_with_negative_sign_goes_back_and_clamps():
    assert Period.parse("P1M").add_to(datetime(2026, 3, 31, tzinfo=UTC), -1) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert Period.parse("P1Y1M").add_to(datetime(2026, 1, 15, tzinfo=UTC), -1) == datetime(
        2024, 12, 15, tzinfo=UTC
    )
    assert Period.parse("PT6H").add_to(datetime(2026, 2, 1, 3, tzinfo=UTC), -1) == datetime(
        2026, 1, 31, 21, tzinfo=UTC
    )


def test_period_add_to_keeps_the_time_zone():
    start = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    assert Period.parse("P1MT1H").add_to(start).tzinfo is UTC
