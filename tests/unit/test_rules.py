"""The negotiation rules of the reference documents, one test each.

rfq (003): CTR-001…006, NEG-V01…V06, NEG-L01/L02/L05, NEG-T01…T05 and the reminders;
offer (001): OFR-001…008, rounds, self-offers, the 7-day expiry; market (000): who opens,
buy-now and auctions, the two-sided close, the response clock; and settings layering.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import factories
from dealroom import processes
from dealroom.domain import engine, permissions, rules
from dealroom.domain.errors import DealroomError
from dealroom.domain.settings import Settings, SettingsError
from dealroom.domain.state import SYSTEM, DealState, Outcome, Payload
from dealroom.domain.timeexpr import Period

RFQ = processes.builtin("rfq")
MARKET = processes.builtin("market")
OFFER = processes.builtin("offer")

T0 = factories.T0  # 2026-02-01 09:00 UTC: the buyer's request
QUOTED_AT = datetime(2026, 2, 1, 14, 15, tzinfo=UTC)
VALID_UNTIL = datetime(2026, 2, 8, 0, 0, tzinfo=UTC)
COUNTERED_AT = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
MSG = factories.COUNTER_MESSAGE


def pay(terms: dict[str, Any] | None = None, message: str | None = MSG, **kw: Any) -> Payload:
    return Payload(terms=terms, message=message, **kw)


def fire(process, deal: DealState, name: str, role: str, payload=None, *, now, **kw) -> Outcome:
    return factories.fire(process, deal, name, role, payload, now=now, **kw)


def refused(process, deal: DealState, name: str, role: str, payload=None, *, now, **kw):
    """The error a refused move raises; the deal it was given must be untouched."""
    before = copy.deepcopy(deal)
    with pytest.raises(DealroomError) as err:
        fire(process, deal, name, role, payload, now=now, **kw)
    assert deal == before
    return err.value


def rfq_requested(settings: dict[str, Any] | None = None, **listing_kw: Any) -> DealState:
    deal = factories.new_deal(RFQ, settings=settings, **listing_kw)
    return fire(RFQ, deal, "request-quote", "buyer", pay({"quantity": 1000}), now=T0).deal


def rfq_quoted(
    price: str = "50.00",
    lead: int = 7,
    valid_until: datetime | None = VALID_UNTIL,
    settings: dict[str, Any] | None = None,
) -> DealState:
    terms: dict[str, Any] = {"unit_price": price, "lead_time_days": lead}
    if valid_until is not None:
        terms["valid_until"] = valid_until.isoformat()
    deal = rfq_requested(settings)
    return fire(RFQ, deal, "send-quote", "seller", pay(terms, None), now=QUOTED_AT).deal


def rfq_countered(settings: dict[str, Any] | None = None) -> DealState:
    """The buyer countered 45.00 against the seller's 50.00: counter-pending."""
    deal = rfq_quoted(settings=settings)
    return fire(RFQ, deal, "counter", "buyer", pay({"unit_price": "45.00"}), now=COUNTERED_AT).deal


def rfq_accepted() -> DealState:
    deal = rfq_quoted()
    return fire(RFQ, deal, "accept", "buyer", pay(None, None), now=COUNTERED_AT).deal


def counter_until_refused(process, deal: DealState, first: str, now: datetime, limit: int = 30):
    """Counter back and forth from `first`; returns the deal, the moves made and the error."""
    role = first
    for made in range(limit):
        try:
            deal = fire(process, deal, "counter", role, now=now).deal
        except DealroomError as exc:
            return deal, made, exc
        role = "seller" if role == "buyer" else "buyer"
        now += H
    raise AssertionError(f"no counter was refused in {limit} moves")


def timers_of(out: Outcome) -> set[tuple[str, str, datetime, str | None, str | None]]:
    return {(t.kind, t.name, t.due_at, t.rule, t.event) for t in out.timers}


# --- CTR: counter-offer rules ------------------------------------------------------------


@pytest.mark.parametrize(
    "terms",
    [None, {}, {"unit_price": "50.00"}, {"unit_price": "50", "lead_time_days": 7}],
    ids=["no-terms", "empty", "same-price", "same-price-and-lead"],
)
def test_counter_that_changes_no_term_is_refused_ctr_001(terms):
    err = refused(RFQ, rfq_quoted(), "counter", "buyer", pay(terms), now=COUNTERED_AT)
    assert (err.code, err.rule, err.field) == ("NEG-003", "CTR-001", "terms")
    assert err.status == 422


def test_counter_changing_only_the_lead_time_is_a_change_ctr_001():
    out = fire(RFQ, rfq_quoted(), "counter", "buyer", pay({"lead_time_days": 10}), now=COUNTERED_AT)
    assert out.quote is not None
    assert out.quote.terms.lead_time_days == 10
    assert out.quote.terms.unit_price == Decimal("50.00")


def test_counter_moving_the_price_less_than_one_percent_is_refused_ctr_002_neg_l05():
    err = refused(
        RFQ, rfq_quoted(), "counter", "buyer", pay({"unit_price": "49.90"}), now=COUNTERED_AT
    )
    assert (err.code, err.rule, err.field) == ("NEG-003", "CTR-002", "unit_price")
    assert err.detail == (
        "A counter-offer must change the price by at least 1%; 49.90 is 0.2% from 50.00."
    )


def test_min_price_change_sentence_comes_from_check_counter_rules():
    deal = rfq_quoted()
    base = deal.pending.terms
    terms = rules.build_terms(
        deal, pay({"unit_price": "49.90"}), base=base, now=COUNTERED_AT, role="buyer"
    )
    with pytest.raises(DealroomError) as err:
        rules.check_counter_rules("counter", deal, terms, pay({"unit_price": "49.90"}), base)
    assert err.value.problems[0].message == (
        "A counter-offer must change the price by at least 1%; 49.90 is 0.2% from 50.00."
    )


@pytest.mark.parametrize("price", ["49.50", "50.50"])
def test_counter_moving_the_price_exactly_one_percent_is_allowed_ctr_002(price):
    out = fire(RFQ, rfq_quoted(), "counter", "buyer", pay({"unit_price": price}), now=COUNTERED_AT)
    assert out.deal.state == "counter-pending"


def test_buyer_cannot_counter_own_counter_ctr_004():
    err = refused(
        RFQ, rfq_countered(), "counter", "buyer", pay({"unit_price": "44.00"}), now=COUNTERED_AT + H
    )
    assert (err.code, err.rule) == ("NEG-008", "CTR-004")
    assert err.status == 403
    assert "seller's move" in err.detail


def test_seller_cannot_accept_own_quote_ctr_004():
    err = refused(RFQ, rfq_quoted(), "accept", "seller", now=COUNTERED_AT)
    assert (err.code, err.rule) == ("NEG-008", "CTR-004")


def test_seller_cannot_accept_own_counter_offer():
    deal = fire(
        RFQ,
        rfq_countered(),
        "counter",
        "seller",
        pay({"unit_price": "47.00"}),
        now=COUNTERED_AT + 5 * H,
    ).deal
    assert deal.pending.created_by_role == "seller"
    err = refused(RFQ, deal, "accept", "seller", now=COUNTERED_AT + 6 * H)
    assert (err.code, err.rule) == ("NEG-008", "CTR-004")


def test_only_the_author_revises_ctr_004():
    err = refused(
        RFQ, rfq_quoted(), "revise-quote", "buyer", pay({"unit_price": "40.00"}), now=COUNTERED_AT
    )
    assert (err.code, err.rule) == ("NEG-008", "CTR-004")
    assert "made the pending quote" in err.detail


def test_eleventh_proposal_is_refused_max_rounds_ctr_005_neg_l01():
    # NEG-L02's 10 versions would refuse the same move; lift it to see NEG-L01 itself.
    deal = rfq_quoted(settings={"max_versions": 50})
    assert (deal.proposals, deal.round) == (1, 1)
    deal, made, err = counter_until_refused(RFQ, deal, "buyer", COUNTERED_AT)
    assert made == 9  # the quote and 9 counters: 10 proposals, ceil(10 / 2) = 5 rounds
    assert (deal.proposals, deal.round) == (10, 5)
    assert (err.code, err.rule) == ("NEG-002", "NEG-L01")
    assert err.context["limit"] == 5


def test_eleventh_proposal_is_refused_with_default_settings_ctr_005():
    _, made, err = counter_until_refused(RFQ, rfq_quoted(), "buyer", COUNTERED_AT)
    assert made == 9
    assert err.code == "NEG-002"
    assert err.status == 409


def test_round_is_proposals_counted_in_pairs():
    deal = rfq_quoted(settings={"max_versions": 50})
    rounds = [deal.round]
    role = "buyer"
    now = COUNTERED_AT
    for _ in range(5):
        deal = fire(RFQ, deal, "counter", role, now=now).deal
        rounds.append(deal.round)
        role, now = ("seller" if role == "buyer" else "buyer"), now + H
    assert rounds == [1, 1, 2, 2, 3, 3]


def test_each_counter_creates_a_new_version_and_the_previous_becomes_countered_ctr_006():
    deal = rfq_quoted()
    out = fire(RFQ, deal, "counter", "buyer", pay({"unit_price": "45.00"}), now=COUNTERED_AT)
    assert out.quote.number == 2
    assert out.status_changes == ((1, "countered"),)
    assert [(v.number, v.status, v.created_by_role) for v in out.deal.versions] == [
        (1, "countered", "seller"),
        (2, "pending", "buyer"),
    ]
    assert out.quote.change_reason == "buyer_counter"
    out = fire(
        RFQ, out.deal, "counter", "seller", pay({"unit_price": "47.00"}), now=COUNTERED_AT + H
    )
    assert [v.status for v in out.deal.versions] == ["countered", "countered", "pending"]
    assert out.quote.change_reason == "seller_revision"
    assert deal.versions[0].status == "pending"  # the deal given is a value: untouched


def test_more_than_ten_versions_via_revise_quote_is_refused_neg_l02():
    deal = rfq_quoted()
    now = COUNTERED_AT
    for _ in range(9):
        deal = fire(RFQ, deal, "revise-quote", "seller", now=now).deal
        now += H
    assert len(deal.versions) == 10
    assert [v.status for v in deal.versions] == ["superseded"] * 9 + ["pending"]
    assert deal.proposals == 1  # revisions are not rounds
    err = refused(RFQ, deal, "revise-quote", "seller", now=now)
    assert (err.code, err.rule) == ("NEG-002", "NEG-L02")


@pytest.mark.parametrize(("price", "side"), [("24.99", "below"), ("75.01", "above")])
def test_counter_more_than_fifty_percent_from_current_is_refused_neg_v01(price, side):
    err = refused(
        RFQ, rfq_quoted(), "counter", "buyer", pay({"unit_price": price}), now=COUNTERED_AT
    )
    assert (err.code, err.rule, err.field) == ("NEG-003", "NEG-V01", "unit_price")
    assert f"{side} it" in err.detail
    assert "within 50% of the current price 50.00" in err.detail


@pytest.mark.parametrize("price", ["25.00", "75.00"])
def test_counter_exactly_fifty_percent_from_current_is_allowed_neg_v01(price):
    out = fire(RFQ, rfq_quoted(), "counter", "buyer", pay({"unit_price": price}), now=COUNTERED_AT)
    assert out.deal.state == "counter-pending"


@pytest.mark.parametrize("lead", [0, -3])
def test_counter_lead_time_must_be_positive_neg_v02(lead):
    err = refused(
        RFQ,
        rfq_quoted(),
        "counter",
        "buyer",
        pay({"unit_price": "45.00", "lead_time_days": lead}),
        now=COUNTERED_AT,
    )
    assert (err.code, err.rule, err.field) == ("NEG-003", "NEG-V02", "lead_time_days")


def test_quote_lead_time_must_be_positive_neg_v02():
    err = refused(
        RFQ,
        rfq_requested(),
        "send-quote",
        "seller",
        pay({"unit_price": "50.00", "lead_time_days": 0}, None),
        now=QUOTED_AT,
    )
    assert (err.code, err.rule) == ("NEG-003", "NEG-V02")


def test_request_quantity_below_the_minimum_order_is_refused_neg_v03():
    deal = factories.new_deal(RFQ)
    err = refused(RFQ, deal, "request-quote", "buyer", pay({"quantity": 50}), now=T0)
    assert (err.code, err.rule, err.field) == ("NEG-003", "NEG-V03", "quantity")
    assert err.detail == "Quantity 50 is outside the order range (100–5000)."


def test_counter_quantity_above_the_maximum_order_is_refused_neg_v03():
    err = refused(RFQ, rfq_quoted(), "counter", "buyer", pay({"quantity": 6000}), now=COUNTERED_AT)
    assert (err.code, err.rule, err.field) == ("NEG-003", "NEG-V03", "quantity")


def test_counter_quantity_inside_the_order_range_is_allowed_neg_v03():
    out = fire(RFQ, rfq_quoted(), "counter", "buyer", pay({"quantity": 5000}), now=COUNTERED_AT)
    assert out.quote.terms.quantity == 5000


@pytest.mark.parametrize("message", [None, "", "   "], ids=["none", "empty", "blank"])
def test_counter_without_a_message_is_refused_neg_v04(message):
    err = refused(
        RFQ,
        rfq_quoted(),
        "counter",
        "buyer",
        pay({"unit_price": "45.00"}, message),
        now=COUNTERED_AT,
    )
    assert (err.code, err.rule, err.field) == ("NEG-003", "NEG-V04", "message")


@pytest.mark.parametrize("move", ["counter", "accept"])
def test_answering_a_quote_after_its_valid_until_is_refused_neg_v05(move):
    deal = rfq_quoted()
    late = VALID_UNTIL + timedelta(minutes=1)
    err = refused(RFQ, deal, move, "buyer", pay({"unit_price": "45.00"}), now=late)
    assert (err.code, err.rule) == ("NEG-001", "NEG-V05")
    assert err.status == 410
    assert "2026-02-08 00:00 UTC" in err.detail


def test_answering_a_quote_at_its_valid_until_is_still_in_time_neg_v05():
    out = fire(RFQ, rfq_quoted(), "accept", "buyer", now=VALID_UNTIL)
    assert out.deal.state == "accepted"


def test_accepting_after_the_quote_expired_is_neg_001():
    deal = rfq_quoted()
    deal = engine.fire(
        RFQ, deal, "expire", SYSTEM, Payload(timer_rule="NEG-T03"), now=VALID_UNTIL
    ).deal
    assert deal.state == "expired"
    assert deal.versions[-1].status == "expired"
    err = refused(RFQ, deal, "accept", "buyer", now=VALID_UNTIL + H)
    assert err.code == "NEG-001"


@pytest.mark.parametrize(
    ("move", "role"),
    [("counter", "buyer"), ("accept", "buyer"), ("counter", "seller"), ("reject", "buyer")],
)
def test_moves_after_acceptance_are_neg_005_neg_v06(move, role):
    deal = rfq_accepted()
    err = refused(RFQ, deal, move, role, pay({"unit_price": "40.00"}), now=COUNTERED_AT + H)
    assert (err.code, err.rule) == ("NEG-005", "NEG-V06")


def test_a_refused_counter_lists_every_offending_field_at_once():
    bad = pay({"unit_price": "20.00", "quantity": 6000, "lead_time_days": 0}, None)
    err = refused(RFQ, rfq_quoted(), "counter", "buyer", bad, now=COUNTERED_AT)
    assert err.code == "NEG-003"
    assert {(p.field, p.rule) for p in err.problems} == {
        ("message", "NEG-V04"),
        ("lead_time_days", "NEG-V02"),
        ("quantity", "NEG-V03"),
        ("unit_price", "NEG-V01"),
    }
    body = err.to_problem()
    assert body["status"] == 422
    assert len(body["errors"]) == 4
    for p in err.problems:
        assert p.message in body["detail"]


def test_unreadable_terms_list_every_offending_field_at_once():
    bad = pay({"unit_price": "abc", "quantity": "many", "colour": "red", "valid_until": "tomorrow"})
    err = refused(RFQ, rfq_quoted(), "counter", "buyer", bad, now=COUNTERED_AT)
    assert err.code == "NEG-003"
    assert {p.field for p in err.problems} == {"unit_price", "quantity", "colour", "valid_until"}


def test_an_extreme_price_is_refused_not_a_crash():
    # A price of 1e-20 makes the next counter's percent change 10^34: more digits than the
    # decimal context holds. Bad input must be a 4xx, never an exception from decimal.
    deal = rfq_requested()
    try:
        deal = fire(
            RFQ,
            deal,
            "send-quote",
            "seller",
            pay({"unit_price": "0.00000000000000000001", "lead_time_days": 7}, None),
            now=QUOTED_AT,
        ).deal
    except DealroomError:
        return  # refusing the price itself is a fine answer
    err = refused(
        RFQ, deal, "counter", "buyer", pay({"unit_price": "999999999999"}), now=COUNTERED_AT
    )
    assert err.code == "NEG-003"


# --- the transition quota ----------------------------------------------------------------


def test_looping_counter_is_refused_when_too_few_moves_would_be_left_but_accept_is_allowed():
    deal = rfq_quoted(settings={"transition_quota": 4})
    assert deal.transition_count == 2
    # 2 moves left: a counter into counter-pending still leaves one to finish
    deal = fire(RFQ, deal, "counter", "buyer", pay({"unit_price": "45.00"}), now=COUNTERED_AT).deal
    assert deal.transition_count == 3
    err = refused(
        RFQ, deal, "counter", "seller", pay({"unit_price": "47.00"}), now=COUNTERED_AT + H
    )
    assert (err.code, err.rule) == ("NEG-002", "QUOTA")
    assert err.context["transitions_left"] == 1
    assert "counter" not in permissions.available_transitions(RFQ, deal, "seller")
    assert "accept" in permissions.available_transitions(RFQ, deal, "seller")
    out = fire(RFQ, deal, "accept", "seller", now=COUNTERED_AT + H)
    assert out.deal.state == "accepted"
    assert out.deal.transition_count == 4


def test_quota_settings_come_from_the_mapping():
    s = Settings.from_mapping({"transition_quota": 4}, base=RFQ.settings)
    assert s.transition_quota == 4
    assert s.max_rounds == RFQ.settings.max_rounds == 5


# --- NEG-T: timers and reminders ---------------------------------------------------------


def test_request_schedules_the_first_quote_deadline_neg_t01_and_inactivity_neg_t04():
    out = fire(
        RFQ, factories.new_deal(RFQ), "request-quote", "buyer", pay({"quantity": 1000}), now=T0
    )
    assert timers_of(out) == {
        ("transition", "expire", T0 + timedelta(hours=48), "NEG-T01", "NEGOTIATION_TIMEOUT"),
        ("transition", "expire", T0 + timedelta(days=30), "NEG-T04", "NEGOTIATION_TIMEOUT"),
    }


def test_quote_lapses_at_valid_until_neg_t03_with_a_reminder_a_day_before():
    deal = rfq_requested()
    out = fire(
        RFQ,
        deal,
        "send-quote",
        "seller",
        pay({"unit_price": "50.00", "lead_time_days": 7}, None),
        now=QUOTED_AT,
    )
    valid = QUOTED_AT + timedelta(days=7)  # the 7-day default validity
    assert out.quote.terms.valid_until == valid
    assert timers_of(out) == {
        ("transition", "expire", valid, "NEG-T03", "QUOTE_EXPIRED"),
        ("transition", "expire", QUOTED_AT + timedelta(days=30), "NEG-T04", "NEGOTIATION_TIMEOUT"),
        ("notification", "quote-expiring", valid - timedelta(hours=24), None, None),
    }


def test_buyer_counter_is_answered_within_24_hours_neg_t02_with_a_reminder_6_hours_before():
    out = fire(
        RFQ, rfq_quoted(), "counter", "buyer", pay({"unit_price": "45.00"}), now=COUNTERED_AT
    )
    assert timers_of(out) == {
        ("transition", "expire", COUNTERED_AT + timedelta(hours=24), "NEG-T02", "COUNTER_EXPIRED"),
        (
            "transition",
            "expire",
            COUNTERED_AT + timedelta(days=30),
            "NEG-T04",
            "NEGOTIATION_TIMEOUT",
        ),
        ("notification", "counter-expiring", COUNTERED_AT + timedelta(hours=18), None, None),
    }


def test_seller_counter_is_answered_within_the_counter_window_neg_t02():
    at = COUNTERED_AT + 5 * H
    out = fire(RFQ, rfq_countered(), "counter", "seller", pay({"unit_price": "47.00"}), now=at)
    assert timers_of(out) == {
        ("transition", "expire", at + timedelta(hours=24), "NEG-T02", "QUOTE_EXPIRED"),
        ("transition", "expire", at + timedelta(days=30), "NEG-T04", "NEGOTIATION_TIMEOUT"),
        ("notification", "counter-expiring", at + timedelta(hours=18), None, None),
    }


def test_seller_counter_valid_for_less_than_the_window_lapses_at_its_valid_until_neg_t02():
    at = COUNTERED_AT + 5 * H
    valid = at + timedelta(hours=10)
    terms = {"unit_price": "47.00", "valid_until": valid.isoformat()}
    out = fire(RFQ, rfq_countered(), "counter", "seller", pay(terms), now=at)
    due = {(t.name, t.rule): t.due_at for t in out.timers}
    assert due[("expire", "NEG-T02")] == valid
    assert due[("counter-expiring", None)] == valid - timedelta(hours=6)


def test_a_longer_counter_window_set_for_the_deal_moves_the_deadline_neg_t02():
    deal = rfq_quoted(settings={"counter_response_window": "PT48H"})
    out = fire(RFQ, deal, "counter", "buyer", pay({"unit_price": "45.00"}), now=COUNTERED_AT)
    due = {(t.name, t.rule): t.due_at for t in out.timers}
    assert due[("expire", "NEG-T02")] == COUNTERED_AT + timedelta(hours=48)


def test_a_reminder_already_past_is_not_scheduled():
    deal = rfq_requested()
    soon = QUOTED_AT + timedelta(hours=12)
    terms = {"unit_price": "50.00", "lead_time_days": 7, "valid_until": soon.isoformat()}
    out = fire(RFQ, deal, "send-quote", "seller", pay(terms, None), now=QUOTED_AT)
    assert not [t for t in out.timers if t.kind == "notification"]
    assert ("expire", "NEG-T03") in {(t.name, t.rule) for t in out.timers}


def test_timer_firing_records_its_rule_event_and_ends_the_request_neg_t01():
    deal = rfq_requested()
    due = T0 + timedelta(hours=48)
    out = engine.fire(RFQ, deal, "expire", SYSTEM, Payload(timer_rule="NEG-T01"), now=due)
    assert out.deal.state == "expired"
    assert out.events[0].type == "NEGOTIATION_TIMEOUT"
    assert out.events[0].payload["rule"] == "NEG-T01"
    assert out.timers == ()
    err = refused(RFQ, out.deal, "send-quote", "seller", now=due + H)
    assert err.code == "NEG-006"


def test_inactivity_is_measured_from_the_last_party_move_neg_t04():
    deal = rfq_quoted()
    later = QUOTED_AT + timedelta(days=3)
    out = fire(RFQ, deal, "counter", "buyer", pay({"unit_price": "45.00"}), now=later)
    due = {(t.name, t.rule): t.due_at for t in out.timers}
    assert due[("expire", "NEG-T04")] == later + timedelta(days=30)


def test_counter_window_above_72_hours_is_refused_neg_t05():
    with pytest.raises(SettingsError) as err:
        Settings.from_mapping({"counter_response_window": "PT73H"}, base=RFQ.settings)
    assert "NEG-T05" in str(err.value)
    assert "counter_response_window" in str(err.value)
    ok = Settings.from_mapping({"counter_response_window": "PT72H"}, base=RFQ.settings)
    assert ok.counter_response_window == Period.parse("PT72H")


def test_seller_layer_cannot_lift_the_72_hour_cap_neg_t05():
    # NEG-T05 is the platform's cap on what a seller may set; a seller's own settings must
    # not raise the cap and the window together.
    seller = {"max_counter_response_window": "PT200H", "counter_response_window": "PT96H"}
    with pytest.raises(SettingsError):
        Settings.layered(RFQ.settings, None, seller, None, None)


# --- settings layering -------------------------------------------------------------------


def test_most_specific_settings_layer_wins():
    category = {"max_rounds": 4, "counter_response_window": "PT36H", "min_price_change_pct": "2"}
    seller = {"max_rounds": 3, "counter_response_window": "PT48H"}
    listing = {"max_rounds": 2}
    deal = {"counter_response_window": "PT12H"}
    s = Settings.layered(RFQ.settings, category, seller, listing, deal)
    assert s.max_rounds == 2  # listing
    assert s.counter_response_window == Period.parse("PT12H")  # deal
    assert s.min_price_change_pct == Decimal("2")  # category
    assert s.max_versions == 10  # the process default
    assert s.quote_validity == Period.parse("P7D")


def test_missing_layers_are_skipped():
    assert Settings.layered(RFQ.settings, None, {}, None, None) == RFQ.settings


def test_bad_settings_are_all_reported_at_once():
    with pytest.raises(SettingsError) as err:
        Settings.from_mapping({"max_rounds": "five", "colour": "red", "quote_validity": "a week"})
    keys = {p.split(":")[0] for p in err.value.problems}
    assert keys == {"max_rounds", "colour", "quote_validity"}


def test_a_layered_setting_changes_the_rule_it_drives():
    deal = rfq_quoted(settings={"min_price_change_pct": "5"})
    err = refused(RFQ, deal, "counter", "buyer", pay({"unit_price": "48.00"}), now=COUNTERED_AT)
    assert err.rule == "CTR-002"
    assert "at least 5%" in err.detail


# --- offer process (001) -----------------------------------------------------------------


def offer_payload(price: str, message: str = factories.OFFER_MESSAGE, **data: Any) -> Payload:
    fields = {**factories.OFFER_FIELDS, **data}
    return Payload(terms={"unit_price": price}, message=message, data=fields)


def submit(price: str, deal: DealState | None = None, payload: Payload | None = None, **actor_kw):
    deal = deal or factories.new_deal(OFFER)
    return fire(
        OFFER, deal, "submit-offer", "buyer", payload or offer_payload(price), now=T0, **actor_kw
    )


def refuse_offer(price: str, deal=None, payload=None, **actor_kw):
    deal = deal or factories.new_deal(OFFER)
    return refused(
        OFFER, deal, "submit-offer", "buyer", payload or offer_payload(price), now=T0, **actor_kw
    )


def test_offer_below_the_minimum_amount_is_refused_ofr_001():
    deal = factories.new_deal(OFFER, unit_price=Decimal("5000"))
    err = refuse_offer("900", deal)
    assert (err.code, err.rule) == ("NEG-003", "OFR-001")
    assert err.detail == (
        "An offer must be between 1,000.00 and 10,000,000.00 USD; this one totals 900.00 USD."
    )


def test_offer_above_the_maximum_amount_is_refused_ofr_001():
    err = refuse_offer("10000001", kyc_verified=True, plan="paid")
    assert (err.code, err.rule) == ("NEG-003", "OFR-001")


@pytest.mark.parametrize("length", [49, 1001])
def test_offer_message_length_is_50_to_1000_characters_ofr_002(length):
    err = refuse_offer("36000", payload=offer_payload("36000", "x" * length))
    assert (err.code, err.rule, err.field) == ("NEG-003", "OFR-002", "message")
    assert f"this message has {length}" in err.detail


@pytest.mark.parametrize("length", [50, 1000])
def test_offer_message_of_50_or_1000_characters_is_accepted_ofr_002(length):
    assert (
        submit("36000", payload=offer_payload("36000", "x" * length)).deal.state == "offer-pending"
    )


def test_offer_needs_the_buyer_fields_ofr_003():
    payload = Payload(terms={"unit_price": "36000"}, message=factories.OFFER_MESSAGE, data={})
    err = refuse_offer("36000", payload=payload)
    assert err.code == "NEG-003"
    assert {(p.field, p.rule) for p in err.problems} == {
        ("buyer_role", "OFR-003"),
        ("timeline", "OFR-003"),
        ("financing", "OFR-003"),
    }


def test_offer_buyer_fields_must_be_one_of_the_choices_ofr_003():
    err = refuse_offer("36000", payload=offer_payload("36000", financing="crypto"))
    assert [(p.field, p.rule) for p in err.problems] == [("financing", "OFR-003")]
    assert "cash, sba_loan, seller_financing" in err.detail


def test_offer_above_50k_needs_kyc_ofr_006():
    err = refuse_offer("60000")
    assert (err.code, err.rule, err.status) == ("NEG-015", "OFR-006", 403)
    assert submit("60000", kyc_verified=True).deal.state == "offer-pending"


def test_offer_below_ten_percent_of_the_asking_price_is_refused_ofr_007():
    err = refuse_offer("3999")
    assert (err.code, err.rule, err.field) == ("NEG-003", "OFR-007", "unit_price")
    assert submit("4000").deal.state == "offer-pending"


def test_offer_above_100k_needs_a_paid_plan_ofr_008():
    err = refuse_offer("150000", kyc_verified=True, plan="free")
    assert (err.code, err.rule) == ("NEG-015", "OFR-008")
    assert submit("150000", kyc_verified=True, plan="paid").deal.state == "offer-pending"


def test_account_age_limit_applies_only_when_set_ofr_005():
    young = T0 - timedelta(days=10)
    assert submit("36000", created_at=young).deal.state == "offer-pending"
    deal = factories.new_deal(OFFER, settings={"min_account_age": "P30D"})
    err = refuse_offer("36000", deal, created_at=young)
    assert (err.code, err.rule) == ("NEG-015", "OFR-005")
    assert submit("36000", deal, created_at=T0 - timedelta(days=40)).deal.state == "offer-pending"


def test_offer_negotiation_has_at_most_3_rounds():
    deal = submit("36000").deal
    deal, made, err = counter_until_refused(OFFER, deal, "seller", T0 + H)
    assert made == 5  # offer + 5 counters = 6 proposals = 3 rounds
    assert deal.round == 3
    assert (err.code, err.rule) == ("NEG-002", "NEG-L01")


def test_buyer_cannot_make_an_offer_to_themselves():
    deal = factories.new_deal(OFFER, buyer_id="u-same", seller_id="u-same")
    err = refuse_offer("36000", deal)
    assert (err.code, err.rule) == ("NEG-008", "SELF-DEAL")


def test_offer_expires_7_days_after_the_last_offer_or_counter():
    out = submit("36000")
    assert timers_of(out) == {
        ("transition", "expire", T0 + timedelta(days=7), "OFR-004", "OFFER_EXPIRED")
    }
    countered_at = T0 + timedelta(days=1)
    out = fire(OFFER, out.deal, "counter", "seller", now=countered_at)
    assert {t.due_at for t in out.timers} == {countered_at + timedelta(days=7)}
    out = fire(OFFER, out.deal, "request-info", "seller", now=T0 + timedelta(days=2))
    assert {t.due_at for t in out.timers} == {countered_at + timedelta(days=7)}
    expired = engine.fire(
        OFFER,
        out.deal,
        "expire",
        SYSTEM,
        Payload(timer_rule="OFR-004"),
        now=countered_at + timedelta(days=7),
    )
    assert expired.events[0].type == "OFFER_EXPIRED"
    assert expired.deal.versions[-1].status == "expired"


def test_accepting_an_offer_creates_the_order():
    out = fire(OFFER, submit("36000").deal, "accept", "seller", now=T0 + H)
    assert out.deal.state == "accepted"
    assert [e.type for e in out.events] == ["OFFER_ACCEPTED", "ORDER_CREATED"]
    assert out.effects[0].params == {"version": 1, "total": "36000.00", "currency": "USD"}


# --- market process (000) ----------------------------------------------------------------


def test_either_party_may_open_a_market_deal_make_offer_by_seller():
    deal = factories.new_deal(MARKET)
    out = fire(MARKET, deal, "make-offer", "seller", pay({"unit_price": "48.00"}, None), now=T0)
    assert out.deal.state == "offer-pending"
    assert out.quote.created_by_role == "seller"
    assert permissions.available_transitions(MARKET, out.deal, "buyer") == [
        "counter",
        "accept",
        "reject",
    ]
    assert permissions.available_transitions(MARKET, out.deal, "seller") == ["withdraw"]
    agreed = fire(MARKET, out.deal, "accept", "buyer", now=T0 + H)
    assert agreed.deal.state == "terms-agreed"


@pytest.mark.parametrize("mode", ["negotiable", "auction"])
def test_buy_now_is_offered_only_on_buy_now_listings(mode):
    deal = factories.new_deal(MARKET, sale_mode=mode)
    err = refused(MARKET, deal, "buy-now", "buyer", pay(None, None), now=T0)
    assert (err.code, err.rule) == ("NEG-007", "SALE-MODE")
    assert "buy-now listings" in err.detail


def test_make_offer_is_not_offered_on_auction_listings():
    deal = factories.new_deal(MARKET, sale_mode="auction")
    err = refused(MARKET, deal, "make-offer", "buyer", now=T0)
    assert (err.code, err.rule) == ("NEG-007", "SALE-MODE")


def test_buy_now_goes_straight_to_closed_won_with_order_escrow_and_shipment():
    deal = factories.new_deal(MARKET, sale_mode="buy_now")
    out = fire(MARKET, deal, "buy-now", "buyer", pay(None, None), now=T0)
    assert out.deal.state == "closed-won"
    assert [e.name for e in out.effects] == ["create-order", "open-escrow", "create-shipment"]
    assert [e.type for e in out.events] == [
        "BOUGHT_NOW",
        "ORDER_CREATED",
        "ESCROW_OPENED",
        "SHIPMENT_CREATED",
    ]
    assert out.deal.accepted is not None
    assert out.deal.accepted.created_by_role == "buyer"
    assert out.effects[0].params["total"] == "50000.00"  # the listing: 1000 × 50.00
    assert out.timers == ()


def test_buy_now_cannot_name_its_own_price():
    # Buy-now binds at the listing's price: a lower price in the payload is either refused
    # or ignored, never ordered.
    deal = factories.new_deal(MARKET, sale_mode="buy_now")
    try:
        out = fire(MARKET, deal, "buy-now", "buyer", pay({"unit_price": "1.00"}, None), now=T0)
    except DealroomError as exc:
        refusal = exc.code
    else:
        refusal = None
        assert out.deal.accepted is not None
        assert out.deal.accepted.terms.unit_price == Decimal("50.00")
    assert refusal in (None, "NEG-003", "NEG-016")


@pytest.mark.parametrize("role", ["system", "operator"])
def test_win_auction_goes_straight_to_closed_won_with_the_winning_bid(role):
    deal = factories.new_deal(MARKET, sale_mode="auction")
    out = fire(MARKET, deal, "win-auction", role, pay({"unit_price": "42.00"}, None), now=T0)
    assert out.deal.state == "closed-won"
    assert out.quote.created_by_role == "buyer"  # the winning bidder's terms
    assert [e.name for e in out.effects] == ["create-order", "open-escrow", "create-shipment"]
    assert out.effects[0].params["total"] == "42000.00"
    assert out.events[0].type == "AUCTION_WON"


def test_buyer_cannot_record_an_auction_win():
    deal = factories.new_deal(MARKET, sale_mode="auction")
    err = refused(MARKET, deal, "win-auction", "buyer", pay({"unit_price": "42.00"}, None), now=T0)
    assert err.code == "NEG-008"


def market_agreed() -> DealState:
    deal, _ = factories.walk(MARKET, [("make-offer", "buyer"), ("accept", "seller")])
    return deal


@pytest.mark.parametrize(("waived", "event"), [(True, "ESCROW_WAIVED"), (False, "ESCROW_OPENED")])
def test_two_sided_close_opens_escrow_unless_waived(waived, event):
    deal = market_agreed()
    req = fire(
        MARKET,
        deal,
        "request-close",
        "seller",
        Payload(data={"escrow_waived": waived}),
        now=T0 + 3 * H,
    )
    assert req.deal.state == "close-requested"
    assert [e.type for e in req.events] == ["CLOSE_REQUESTED"]
    out = fire(MARKET, req.deal, "confirm-close", "buyer", now=T0 + 4 * H)
    assert out.deal.state == "closed-won"
    assert [e.type for e in out.events] == [
        "DEAL_CLOSED",
        "ORDER_CREATED",
        event,
        "SHIPMENT_CREATED",
    ]
    assert out.effects[1].name == "open-escrow"
    assert out.effects[1].params == {"waived": waived}


def test_escrow_waiver_must_be_true_or_false():
    err = refused(
        MARKET,
        market_agreed(),
        "request-close",
        "seller",
        Payload(data={"escrow_waived": "yes"}),
        now=T0 + 3 * H,
    )
    assert (err.code, err.field) == ("NEG-003", "escrow_waived")


def test_only_the_seller_requests_close_and_only_the_buyer_confirms():
    deal = market_agreed()
    assert refused(MARKET, deal, "request-close", "buyer", now=T0 + 3 * H).code == "NEG-008"
    deal = fire(MARKET, deal, "request-close", "seller", now=T0 + 3 * H).deal
    assert refused(MARKET, deal, "confirm-close", "seller", now=T0 + 4 * H).code == "NEG-008"


def test_counter_resets_the_response_clock():
    deal = fire(MARKET, factories.new_deal(MARKET), "make-offer", "buyer", now=T0).deal
    first = deal.pending.terms.valid_until
    out = fire(MARKET, deal, "counter", "seller", now=T0 + 5 * H)
    assert out.events[0].type == "COUNTER_SUBMITTED"
    assert out.events[0].payload["response_seconds"] == 5 * 3600
    due = {t.rule: t.due_at for t in out.timers}
    assert due["NEG-T03"] == T0 + 5 * H + timedelta(days=7) > first
    out = fire(MARKET, out.deal, "counter", "buyer", now=T0 + 7 * H)
    assert out.events[0].payload["response_seconds"] == 2 * 3600


def test_first_move_has_no_response_time():
    out = fire(MARKET, factories.new_deal(MARKET), "make-offer", "buyer", now=T0)
    assert "response_seconds" not in out.events[0].payload


def test_blocked_buyer_cannot_negotiate():
    err = refused(MARKET, factories.new_deal(MARKET), "make-offer", "buyer", now=T0, blocked=True)
    assert (err.code, err.rule) == ("NEG-009", "NEG-009")
