"""Quote versions: exact totals, currency minor units, forward-only status, differences."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dealroom.domain.quotes import (
    FINAL_STATUSES,
    STATUSES,
    QuoteVersion,
    Terms,
    change_from,
    diff,
    minor_unit,
    money,
    percent_change,
)

D = Decimal
AT = datetime(2026, 2, 1, 14, 15, tzinfo=UTC)


def version(number: int, price: str, qty: int = 1000, lead: int | None = 7, **kw) -> QuoteVersion:
    role = kw.pop("role", "seller")
    status = kw.pop("status", "pending")
    terms = Terms(D(price), qty, kw.pop("currency", "SAR"), lead_time_days=lead, **kw)
    return QuoteVersion(number, terms, role, AT, "initial", status=status)


# --- totals -------------------------------------------------------------------------------


def test_total_is_exact_decimal_price_times_quantity():
    terms = Terms(D("47.00"), 1000, "SAR")
    assert terms.total == D("47000.00")
    assert str(terms.total) == "47000.00"
    assert Terms(D("0.10"), 3, "USD").total == D("0.30")  # 0.1 * 3 is not 0.30000000000000004


def test_total_with_discount_rounds_the_discount_half_up_to_cents():
    terms = Terms(D("19.99"), 3, "SAR", discount_percent=D("10"))
    assert terms.subtotal == D("59.97")
    assert terms.discount == D("6.00")  # 5.997 rounds up
    assert terms.total == D("53.97")


def test_zero_or_missing_discount_is_no_discount():
    assert Terms(D("50"), 2, "SAR", discount_percent=D("0")).total == D("100.00")
    assert Terms(D("50"), 2, "SAR").discount == D("0.00")


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        ("JPY", 0),
        ("jpy", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("SAR", 2),
        ("USD", 2),
        ("EUR", 2),
    ],
)
def test_currency_minor_units(currency, places):
    assert minor_unit(currency) == places


def test_yen_totals_have_no_decimals():
    total = Terms(D("99.5"), 3, "JPY").total
    assert total == D("299")
    assert total.as_tuple().exponent == 0


def test_dinar_totals_have_three_decimals():
    total = Terms(D("1.2345"), 1, "KWD").total
    assert total == D("1.235")
    assert str(total) == "1.235"


def test_money_rounds_half_up():
    assert money(D("0.005"), "USD") == D("0.01")
    assert money(D("0.004"), "USD") == D("0.00")
    assert money(D("2.5"), "JPY") == D("3")


@given(
    price=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    qty=st.integers(min_value=1, max_value=100_000),
    discount=st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("99.99"), places=2)),
)
def test_total_is_subtotal_less_discount_in_whole_cents(price, qty, discount):
    terms = Terms(price, qty, "SAR", discount_percent=discount)
    assert terms.total == money(price * qty, "SAR") - terms.discount
    assert terms.total.as_tuple().exponent == -2
    assert D(0) <= terms.total <= price * qty


def test_terms_json_carries_decimals_as_strings():
    j = Terms(D("47.00"), 1000, "SAR", lead_time_days=5, valid_until=AT).to_json()
    assert j["unit_price"] == "47.00"
    assert j["total_price"] == "47000.00"
    assert j["valid_until"] == "2026-02-01T14:15:00.000000Z"


# --- status moves forward only ------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_pending_version_may_move_to_any_final_status(status):
    v = version(1, "50.00")
    moved = v.with_status(status)
    assert moved.status == status
    assert v.status == "pending"  # a version is a value; the old one is unchanged
    assert moved.terms == v.terms


@pytest.mark.parametrize("start", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("target", STATUSES)
def test_a_decided_version_never_changes_status(start, target):
    v = version(1, "50.00", status=start)
    if target == start:
        assert v.with_status(target) == v
    else:
        with pytest.raises(ValueError, match="cannot change"):
            v.with_status(target)


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="unknown quote status"):
        version(1, "50.00").with_status("maybe")


# --- differences --------------------------------------------------------------------------


def test_diff_of_the_reference_example():
    d = diff(version(1, "50.00"), version(3, "47.00", lead=5))
    assert (d.from_version, d.to_version) == (1, 3)
    by_field = {c.field: c for c in d.changes}
    assert (by_field["unit_price"].old_value, by_field["unit_price"].new_value) == (
        D("50.00"),
        D("47.00"),
    )
    assert by_field["unit_price"].percent_change == D("-6.00")
    assert by_field["lead_time_days"].percent_change == D("-28.57")
    assert by_field["total_price"].new_value == D("47000.00")
    assert d.summary == "Price reduced 6%, lead time reduced 2 days"


def test_diff_of_identical_terms_is_no_change():
    d = diff(version(1, "50.00"), version(2, "50.00"))
    assert d.changes == ()
    assert d.summary == "No change"


def test_diff_names_every_changed_field_with_percent_and_summary():
    old = version(1, "50.00")
    new = version(2, "51.25", qty=800, lead=None, discount_percent=D("5"), delivery_terms="FOB")
    d = diff(old, new)
    assert [(c.field, c.percent_change) for c in d.changes] == [
        ("unit_price", D("2.50")),
        ("quantity", D("-20.00")),
        ("total_price", D("-22.10")),
        ("discount_percent", None),
        ("lead_time_days", None),
        ("delivery_terms", None),
    ]
    assert d.summary == (
        "Price increased 2.5%, quantity reduced from 1000 to 800, discount set to 5%, "
        "lead time removed, delivery terms changed"
    )
    assert d.to_json()["changes"][1] == {
        "field": "quantity",
        "old_value": 1000,
        "new_value": 800,
        "percent_change": "-20.00",
    }


def test_diff_summary_of_removed_discount_longer_lead_and_notes():
    d = diff(version(1, "50.00", discount_percent=D("5")), version(2, "50.00", lead=8, notes="x"))
    assert d.summary == "Discount removed, lead time increased 1 day, notes changed"


def test_diff_lists_a_new_validity_but_leaves_it_out_of_the_summary():
    d = diff(
        version(1, "50.00", valid_until=AT), version(2, "50.00", valid_until=AT.replace(day=9))
    )
    assert [c.field for c in d.changes] == ["valid_until"]
    assert d.summary == "No change"
    assert d.to_json()["changes"][0]["new_value"] == "2026-02-09T14:15:00.000000Z"


def test_diff_works_backwards_too():
    d = diff(version(3, "47.00", lead=5), version(1, "50.00"))
    assert d.summary == "Price increased 6.38%, lead time increased 2 days"


@given(
    a=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    b=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    qa=st.integers(1, 10_000),
    qb=st.integers(1, 10_000),
)
def test_diff_of_any_two_versions_lists_exactly_the_changed_fields(a, b, qa, qb):
    d = diff(version(1, str(a), qty=qa), version(2, str(b), qty=qb))
    fields = [c.field for c in d.changes]
    assert ("unit_price" in fields) == (a != b)
    assert ("quantity" in fields) == (qa != qb)
    assert ("total_price" in fields) == (a * qa != b * qb)
    for c in d.changes:
        assert c.percent_change == percent_change(D(c.old_value), D(c.new_value))
    assert (d.summary == "No change") == (not d.changes)


def test_percent_change_from_zero_is_unknown():
    assert percent_change(D("0"), D("5")) is None
    assert percent_change(D("50"), D("47")) == D("-6.00")


def test_change_from_previous_version_gives_price_percent_and_lead_days():
    pct, lead = change_from(version(1, "50.00"), Terms(D("47.00"), 1000, "SAR", lead_time_days=5))
    assert (pct, lead) == (D("-6.00"), -2)
    assert change_from(None, Terms(D("47.00"), 1000, "SAR")) == (None, None)
