"""Every time rule of the references, fired by the worker through the real services.

The clock is moved, never slept on: a deal is built move by move at known instants, then
`run_once(db, config, at)` fires whatever is due at `at`. Each expiry must record the
reference's event with actor `system`, keep the audit chain valid, and leave nothing
pending; a timer of a state the deal has left never fires.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from dbsupport import PG_URL
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import DealroomError, InvalidRequest
from dealroom.domain.timestamps import iso
from dealroom.services import deals, views
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork, session_scope
from dealroom.worker import PassResult, run_once
from people import TEST_SECRET
from servicedeals import CONFIG, QUOTE, Room, user_row

OFFER_MESSAGE = (
    "We would like to buy at this price; financing is arranged and we can close in 30 days."
)
OFFER_FIELDS = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def room(db: Database, clock: TestClock) -> Room:
    return Room(
        db, clock, user_row(db, clock, "buyer@acme.test"), user_row(db, clock, "seller@parts.test")
    )


def rfq_deal(room: Room, **listing: Any) -> str:
    listing_id = room.listing("rfq", **listing)
    return room.open(listing_id, "request-quote", terms={"quantity": 1000}, message="Need for Q2")


# --- rfq: NEG-T01 … NEG-T05 -------------------------------------------------------------


def test_neg_t01_a_request_without_a_quote_times_out_after_48_hours(room: Room) -> None:
    t0 = room.clock.now()
    deal_id = rfq_deal(room)
    assert room.pending(deal_id) == [
        ("expire", "NEG-T01", t0 + 48 * H),
        ("expire", "NEG-T04", t0 + 30 * D),
    ]
    room.expect_expiry(
        deal_id, at=t0 + 48 * H, event="NEGOTIATION_TIMEOUT", rule="NEG-T01", state="expired"
    )
    assert room.bell(deal_id, "negotiation-timeout") == {room.buyer.id, room.seller.id}
    room.clock.set(t0 + 49 * H)
    with pytest.raises(DealroomError) as refused:
        room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    assert refused.value.code == "NEG-006"


def test_ctr_003_a_buyer_counter_is_answered_within_24_hours(room: Room) -> None:
    deal_id = rfq_deal(room)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    countered = room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "counter", terms={"unit_price": "45.00"}, message="Volume")
    assert room.due(deal_id, "NEG-T02") == countered + 24 * H
    assert room.due(deal_id, "counter-expiring") == countered + 18 * H  # 6 h before
    room.expect_expiry(
        deal_id, at=countered + 24 * H, event="COUNTER_EXPIRED", rule="NEG-T02", state="expired"
    )
    with room.db.session(write=False) as s:
        statuses = [v.status for v in deals.load_versions(s, deal_id)]
    assert statuses == ["countered", "expired"]


@pytest.mark.parametrize(
    ("valid_for", "expires_after"),
    [(timedelta(hours=10), timedelta(hours=10)), (None, timedelta(hours=24))],
    ids=["valid-until-first", "24-hours-first"],
)
def test_neg_t02_a_seller_counter_lapses_at_the_earlier_of_valid_until_and_24_hours(
    room: Room, valid_for: timedelta | None, expires_after: timedelta
) -> None:
    deal_id = rfq_deal(room)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "counter", terms={"unit_price": "45.00"}, message="Volume")
    countered = room.clock.advance(hours=2)
    terms: dict[str, Any] = {"unit_price": "47.00"}
    if valid_for is not None:
        terms["valid_until"] = (countered + valid_for).isoformat()
    room.move(room.seller, deal_id, "counter", terms=terms, message="Meet in the middle")
    assert room.deal(deal_id).state == "quote-pending"
    room.expect_expiry(
        deal_id, at=countered + expires_after, event="QUOTE_EXPIRED", rule="NEG-T02",
        state="expired",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("valid_for", "lapses_after"),
    [(None, timedelta(days=7)), (timedelta(days=3), timedelta(days=3))],
    ids=["default-7-days", "valid-until"],
)
def test_neg_t03_a_quote_lapses_at_its_valid_until(
    room: Room, valid_for: timedelta | None, lapses_after: timedelta
) -> None:
    deal_id = rfq_deal(room)
    sent = room.clock.advance(hours=3)
    terms = dict(QUOTE)
    if valid_for is not None:
        terms["valid_until"] = (sent + valid_for).isoformat()
    room.move(room.seller, deal_id, "send-quote", terms=terms)
    assert room.due(deal_id, "quote-expiring") == sent + lapses_after - 24 * H
    assert room.fire(sent + lapses_after - 24 * H).fired == 1  # the reminder only
    assert room.bell(deal_id, "quote-expiring") == {room.buyer.id, room.seller.id}
    assert room.deal(deal_id).state == "quote-pending"
    room.expect_expiry(
        deal_id, at=sent + lapses_after, event="QUOTE_EXPIRED", rule="NEG-T03", state="expired"
    )
    room.clock.set(sent + lapses_after + H)
    with pytest.raises(DealroomError) as refused:
        room.move(room.buyer, deal_id, "accept")
    assert refused.value.code == "NEG-001"


def test_neg_t04_thirty_days_without_a_move_end_the_negotiation(room: Room) -> None:
    deal_id = rfq_deal(room)
    t0 = room.clock.now()
    far = (t0 + 90 * D).isoformat()
    room.move(room.seller, deal_id, "send-quote", terms={**QUOTE, "valid_until": far})
    assert room.due(deal_id, "NEG-T04") == t0 + 30 * D
    revised = room.clock.advance(days=10)
    room.move(
        room.seller, deal_id, "revise-quote", terms={"unit_price": "49.00", "valid_until": far}
    )
    room.clock.advance(days=10)
    room.tx(
        lambda uow: deals.post_message(uow, room.buyer, deal_id=deal_id, body="Still thinking")
    )  # a message is not a move
    assert room.fire(t0 + 31 * D).fired == 0
    room.expect_expiry(
        deal_id, at=revised + 30 * D, event="NEGOTIATION_TIMEOUT", rule="NEG-T04",
        state="expired",
    )  # fmt: skip


def _seller_setting(room: Room, window: str) -> Room:
    config = Config(database_url="unused", secret_key=TEST_SECRET,
                    rule_overrides={"seller": {room.seller.id: {"counter_response_window": window}}})  # fmt: skip
    return Room(room.db, room.clock, room.buyer, room.seller, config)


@pytest.mark.parametrize(
    ("where", "window", "hours"),
    [("listing", "PT48H", 48), ("seller", "PT72H", 72)],
)
def test_neg_t05_a_seller_may_lengthen_the_counter_window_up_to_72_hours(
    room: Room, where: str, window: str, hours: int
) -> None:
    if where == "seller":
        room = _seller_setting(room, window)
        deal_id = rfq_deal(room)
    else:
        deal_id = rfq_deal(room, rules={"counter_response_window": window})
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    countered = room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "counter", terms={"unit_price": "45.00"}, message="Volume")
    assert room.due(deal_id, "counter-expiring") == countered + (hours - 6) * H
    assert room.fire(countered + 24 * H).fired == 0  # the default 24 h no longer apply
    assert room.fire(countered + (hours - 6) * H).fired == 1  # the reminder
    assert room.bell(deal_id, "counter-expiring") == {room.buyer.id, room.seller.id}
    room.expect_expiry(
        deal_id, at=countered + hours * H, event="COUNTER_EXPIRED", rule="NEG-T02",
        state="expired",
    )  # fmt: skip


@pytest.mark.parametrize(
    "rules",
    [{"counter_response_window": "PT96H"}, {"max_counter_response_window": "PT96H"}],
    ids=["window-over-72h", "raising-the-cap"],
)
def test_neg_t05_a_counter_window_over_72_hours_is_refused(
    room: Room, rules: dict[str, str]
) -> None:
    listing_id = room.listing("rfq", rules=rules)
    with pytest.raises(InvalidRequest) as refused:
        room.open(listing_id, "request-quote", terms={"quantity": 1000}, message="Need for Q2")
    assert refused.value.rule == "SETTINGS"
    assert "NEG-T05" in refused.value.detail
    seller_room = _seller_setting(room, "PT96H")
    with pytest.raises(InvalidRequest):
        seller_room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})


# --- offer and market -----------------------------------------------------------------


def offer_deal(room: Room) -> str:
    listing_id = room.listing("offer", unit_price="45000.00", quantity=1)
    return room.open(listing_id, "submit-offer", terms={"unit_price": "40000.00", "quantity": 1},
                     message=OFFER_MESSAGE, data=OFFER_FIELDS)  # fmt: skip


def test_an_offer_lapses_7_days_after_it_was_made_even_after_a_request_for_info(
    room: Room,
) -> None:
    t0 = room.clock.now()
    deal_id = offer_deal(room)
    room.clock.advance(days=3)
    room.move(room.seller, deal_id, "request-info", message="Proof of funds, please.")
    assert room.pending(deal_id) == [("expire", "OFR-004", t0 + 7 * D)]
    room.expect_expiry(
        deal_id, at=t0 + 7 * D, event="OFFER_EXPIRED", rule="OFR-004", state="expired"
    )
    assert room.bell(deal_id, "offer-expired") == {room.buyer.id, room.seller.id}


def test_a_counter_to_an_offer_starts_a_new_7_day_window(room: Room) -> None:
    deal_id = offer_deal(room)
    countered = room.clock.advance(days=2)
    room.move(room.seller, deal_id, "counter", terms={"unit_price": "43000.00"},
              message="We can meet you part of the way.")  # fmt: skip
    assert room.fire(countered + 5 * D).fired == 0  # the first offer's 7 days are over
    room.expect_expiry(
        deal_id, at=countered + 7 * D, event="OFFER_EXPIRED", rule="OFR-004", state="expired"
    )


def market_deal(room: Room) -> str:
    listing_id = room.listing("market")
    return room.open(listing_id, "make-offer", terms={"unit_price": "48.00", "quantity": 1000})


def test_a_market_offer_lapses_at_its_valid_until_and_a_counter_resets_the_clock(
    room: Room,
) -> None:
    t0 = room.clock.now()
    deal_id = market_deal(room)
    assert room.due(deal_id, "NEG-T03") == t0 + 7 * D
    assert room.due(deal_id, "offer-expiring") == t0 + 6 * D
    countered = room.clock.advance(days=2)
    room.move(room.seller, deal_id, "counter", terms={"unit_price": "49.50"}, message="Close")
    assert room.fire(t0 + 7 * D).fired == 0
    assert room.fire(countered + 6 * D).fired == 1
    assert room.bell(deal_id, "offer-expiring") == {room.buyer.id, room.seller.id}
    room.expect_expiry(
        deal_id, at=countered + 7 * D, event="QUOTE_EXPIRED", rule="NEG-T03", state="expired"
    )


def test_agreed_market_terms_time_out_after_30_quiet_days(room: Room) -> None:
    deal_id = market_deal(room)
    accepted = room.clock.advance(hours=5)
    room.move(room.seller, deal_id, "accept")
    assert room.deal(deal_id).state == "terms-agreed"
    room.expect_expiry(
        deal_id, at=accepted + 30 * D, event="NEGOTIATION_TIMEOUT", rule="NEG-T04",
        state="expired",
    )  # fmt: skip


# --- Sharetribe negotiation: every :at ----------------------------------------------------


def negotiation_deal(room: Room, *, paid: bool = True) -> str:
    """request-quote → offer → accept and pay (→ confirm payment when `paid`)."""
    listing_id = room.listing("negotiation", unit_price="100.00", quantity=10)
    deal_id = room.open(listing_id, "request-quote", data={"protectedData": {"brief": "10 pumps"}})
    room.clock.advance(hours=2)
    room.move(room.seller, deal_id, "make-offer-from-request",
              terms={"unit_price": "90.00", "quantity": 10})  # fmt: skip
    room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "request-payment-to-accept-offer")
    if paid:
        room.clock.advance(minutes=5)
        room.move(room.buyer, deal_id, "confirm-payment")
    return deal_id


def test_an_unpaid_acceptance_expires_after_15_minutes(room: Room) -> None:
    deal_id = negotiation_deal(room, paid=False)
    asked = room.clock.now()
    room.expect_expiry(
        deal_id, at=asked + timedelta(minutes=15), event="EXPIRE_PAYMENT", rule=None,
        state="payment-expired",
    )  # fmt: skip
    with room.db.session(write=False) as s:
        assert deals.load_versions(s, deal_id)[-1].status == "expired"


def test_an_undelivered_order_is_cancelled_75_days_after_payment(room: Room) -> None:
    deal_id = negotiation_deal(room)
    paid = room.clock.now()
    assert room.due(deal_id, "deliver-reminder") == paid + 72 * D
    assert room.fire(paid + 72 * D).fired == 1
    assert room.bell(deal_id, "deliver-reminder") == {room.seller.id}
    room.expect_expiry(deal_id, at=paid + 75 * D, event="AUTO_CANCEL", rule=None, state="canceled")
    assert room.bell(deal_id, "auto-canceled-order-customer") == {room.buyer.id}


def test_changes_requested_still_cancel_75_days_after_payment(room: Room) -> None:
    deal_id = negotiation_deal(room)
    paid = room.clock.now()
    room.clock.advance(days=10)
    room.move(room.seller, deal_id, "deliver")
    room.clock.advance(days=1)
    room.move(room.buyer, deal_id, "request-changes")
    room.expect_expiry(
        deal_id, at=paid + 75 * D, event="AUTO_CANCEL_FROM_CHANGES_REQUESTED", rule=None,
        state="canceled",
    )  # fmt: skip


def test_a_delivery_is_accepted_14_days_after_the_last_delivery_then_reviews_close(
    room: Room,
) -> None:
    deal_id = negotiation_deal(room)
    delivered = room.clock.advance(days=3)
    room.move(room.seller, deal_id, "deliver")
    assert room.due(deal_id, "accept-order-reminder") == delivered + 5 * D
    assert room.fire(delivered + 5 * D).fired == 1
    assert room.bell(deal_id, "accept-order-reminder") == {room.buyer.id}
    completed = delivered + 14 * D
    room.expect_expiry(
        deal_id, at=completed, event="AUTO_ACCEPT_DELIVERABLE", rule=None, state="completed",
        final=False,
    )  # fmt: skip
    room.expect_expiry(
        deal_id, at=completed + 7 * D, event="EXPIRE_REVIEW_PERIOD", rule=None, state="reviewed"
    )


@pytest.mark.parametrize(
    ("first", "reviewer", "expiry", "left"),
    [
        ("review-1-by-customer", "buyer", "EXPIRE_PROVIDER_REVIEW_PERIOD", "reviewed-by-customer"),
        ("review-1-by-provider", "seller", "EXPIRE_CUSTOMER_REVIEW_PERIOD", "reviewed-by-provider"),
    ],
)
def test_a_review_period_ends_7_days_after_completion_and_publishes_the_review(
    room: Room, first: str, reviewer: str, expiry: str, left: str
) -> None:
    deal_id = negotiation_deal(room)
    room.clock.advance(days=1)
    room.move(room.seller, deal_id, "deliver")
    completed = room.clock.advance(days=1)
    room.move(room.buyer, deal_id, "accept-deliverable")
    room.clock.advance(days=2)
    who = room.buyer if reviewer == "buyer" else room.seller
    room.move(who, deal_id, first, data={"reviewRating": 4, "reviewContent": "Good"})
    assert room.deal(deal_id).state == left
    assert room.deal(deal_id).data["reviews"][reviewer]["published"] is False
    room.expect_expiry(deal_id, at=completed + 7 * D, event=expiry, rule=None, state="reviewed")
    assert room.deal(deal_id).data["reviews"][reviewer]["published"] is True


# --- timers of a state already left ---------------------------------------------------


def test_a_counter_reminder_is_dropped_when_the_counter_is_answered(room: Room) -> None:
    deal_id = rfq_deal(room)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    countered = room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "counter", terms={"unit_price": "45.00"}, message="Volume")
    room.clock.advance(hours=2)
    room.move(room.seller, deal_id, "accept")
    assert room.pending(deal_id) == []
    assert room.fire(countered + 10 * D).fired == 0
    assert room.bell(deal_id, "counter-expiring") == set()
    assert [e.type for e in room.events(deal_id)][-2:] == ["COUNTER_ACCEPTED", "ORDER_CREATED"]


def _stray_timer(room: Room, deal_id: str, *, state: str, name: str = "expire") -> int:
    """A pending timer row as a bug elsewhere might leave it."""
    with session_scope(room.db) as s:
        timer = m.Timer(deal_id=deal_id, kind="transition", name=name, state=state,
                        due_at=room.clock.now(), rule="NEG-T01", event="NEGOTIATION_TIMEOUT",
                        status="pending", created_at=room.clock.now())  # fmt: skip
        s.add(timer)
        s.flush()
        return timer.id


def _timer_status(room: Room, timer_id: int) -> str:
    with room.db.session(write=False) as s:
        timer = s.get(m.Timer, timer_id)
        assert timer is not None
        return timer.status


def test_a_timer_of_a_state_already_left_is_cancelled_and_never_fires(room: Room) -> None:
    deal_id = rfq_deal(room)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    stray = _stray_timer(room, deal_id, state="quote-requested")
    before = [e.hash for e in room.events(deal_id)]
    result = room.fire(room.clock.now() + H)
    assert (result.fired, result.stale) == (0, 1)
    assert _timer_status(room, stray) == "cancelled"
    assert room.deal(deal_id).state == "quote-pending"
    assert [e.hash for e in room.events(deal_id)] == before


def test_a_timer_the_engine_refuses_is_set_aside_not_retried(room: Room) -> None:
    deal_id = rfq_deal(room)
    stray = _stray_timer(room, deal_id, state="quote-requested", name="send-quote")
    assert room.fire(room.clock.now() + H).failed == 1  # the system may not send a quote
    assert _timer_status(room, stray) == "failed"
    assert room.fire(room.clock.now() + H) == PassResult()
    assert room.deal(deal_id).state == "quote-requested"


def test_a_crash_while_firing_leaves_the_timer_due(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = room.clock.now()
    deal_id = rfq_deal(room)
    real = deals.fire_system

    def crash(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise RuntimeError("worker killed mid-fire")

    monkeypatch.setattr(deals, "fire_system", crash)
    with pytest.raises(RuntimeError):
        room.fire(t0 + 48 * H)
    assert room.deal(deal_id).state == "quote-requested"
    assert room.due(deal_id, "NEG-T01") == t0 + 48 * H
    monkeypatch.setattr(deals, "fire_system", real)
    room.expect_expiry(
        deal_id, at=t0 + 48 * H, event="NEGOTIATION_TIMEOUT", rule="NEG-T01", state="expired"
    )
    assert [e.type for e in room.events(deal_id)].count("NEGOTIATION_TIMEOUT") == 1


def test_the_continuous_worker_records_the_time_each_timer_really_fired(room: Room) -> None:
    t0 = room.clock.now()
    deal_id = rfq_deal(room)
    readings = iter([t0 + 49 * H, t0 + 50 * H, t0 + 51 * H])
    clock = TestClock(t0)
    clock.now = lambda: next(readings)  # type: ignore[method-assign]
    result = run_once(room.db, CONFIG, t0, clock=clock)
    assert result.fired == 1
    last = room.events(deal_id)[-1]
    assert (last.type, last.created_at) == ("NEGOTIATION_TIMEOUT", t0 + 49 * H)


# --- deadlines in the deal view -----------------------------------------------------------


def _view(room: Room, deal_id: str, viewer: str) -> dict[str, Any]:
    def read(uow: UnitOfWork) -> dict[str, Any]:
        deal = uow.session.get(m.Deal, deal_id)
        assert deal is not None
        process = get_process(uow.session, deal.process_name, deal.process_version)
        state = deals.engine_state(uow, deal, process)
        return views.deal_json(uow.session, deal, state, process, viewer,
                               fee_config=CONFIG.fees, now=uow.now)  # fmt: skip

    return dict(room.tx(read))


def test_every_pending_deadline_shows_in_the_deal(room: Room) -> None:
    t0 = room.clock.now()
    deal_id = rfq_deal(room)
    view = _view(room, deal_id, "seller")
    assert view["deadlines"] == {
        "respond_by": iso(t0 + 48 * H),
        "respond_by_rule": "NEG-T01",
        "expires_with": "NEGOTIATION_TIMEOUT",
        "timers": [
            {"transition": "expire", "rule": "NEG-T01", "event": "NEGOTIATION_TIMEOUT",
             "due_at": iso(t0 + 48 * H)},
            {"transition": "expire", "rule": "NEG-T04", "event": "NEGOTIATION_TIMEOUT",
             "due_at": iso(t0 + 30 * D)},
        ],
    }  # fmt: skip
    assert view["next_step"] == {
        "action": "send-quote", "actor": "seller", "due_at": iso(t0 + 48 * H),
    }  # fmt: skip

    sent = room.clock.advance(hours=2)
    valid_until = sent + 3 * D
    room.move(room.seller, deal_id, "send-quote",
              terms={**QUOTE, "valid_until": valid_until.isoformat()})  # fmt: skip
    view = _view(room, deal_id, "buyer")
    assert view["deadlines"] == {
        "respond_by": iso(valid_until),
        "respond_by_rule": "NEG-T03",
        "expires_with": "QUOTE_EXPIRED",
        "quote_valid_until": iso(valid_until),
        "timers": [
            {"transition": "expire", "rule": "NEG-T03", "event": "QUOTE_EXPIRED",
             "due_at": iso(valid_until)},
            {"transition": "expire", "rule": "NEG-T04", "event": "NEGOTIATION_TIMEOUT",
             "due_at": iso(sent + 30 * D)},
        ],
    }  # fmt: skip
    assert view["next_step"] == {
        "action": "respond", "actor": "buyer", "due_at": iso(valid_until),
    }  # fmt: skip

    countered = room.clock.advance(hours=1)
    room.move(room.buyer, deal_id, "counter", terms={"unit_price": "45.00"}, message="Volume")
    view = _view(room, deal_id, "seller")
    assert view["deadlines"]["respond_by"] == iso(countered + 24 * H)
    assert view["deadlines"]["expires_with"] == "COUNTER_EXPIRED"
    assert view["next_step"] == {
        "action": "respond", "actor": "seller", "due_at": iso(countered + 24 * H),
    }  # fmt: skip

    room.fire(countered + 24 * H)
    view = _view(room, deal_id, "buyer")
    assert view["deadlines"] == {}
    assert view["next_step"] is None


# --- several workers on PostgreSQL ----------------------------------------------------


@pytest.mark.skipif(not PG_URL, reason="row locks need PostgreSQL (DEALROOM_TEST_DATABASE_URL)")
def test_a_timer_of_a_deal_locked_by_a_request_fires_once_the_lock_is_gone(room: Room) -> None:
    t0 = room.clock.now()
    deal_id = rfq_deal(room)
    holder = room.db.session()
    holder.execute(text("SELECT id FROM deals WHERE id = :id FOR UPDATE"), {"id": deal_id})
    released = threading.Timer(0.08, holder.rollback)
    released.start()
    try:
        started = time.monotonic()
        result = room.fire(t0 + 48 * H)
    finally:
        released.join()
        holder.close()
    assert result.fired == 1
    assert result.skipped_busy == 0
    assert time.monotonic() - started >= 0.05
    assert room.deal(deal_id).state == "expired"
