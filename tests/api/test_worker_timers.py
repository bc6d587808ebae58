"""Durable timers fired by the worker: once, on time, never for a state already left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dbsupport import PG_URL
from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.audit import chain
from dealroom.worker import run_once
from races import race
from servicedeals import CONFIG, make_parties, move, request_quote


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    return make_parties(db, clock)


def deal_row(db: Database, deal_id: str) -> m.Deal:
    with db.session(write=False) as s:
        deal = s.get(m.Deal, deal_id)
        assert deal is not None
        return deal


def event_types(db: Database, deal_id: str) -> list[str]:
    with db.session(write=False) as s:
        return [e.type for e in chain.deal_events(s, deal_id)]


def test_a_request_without_a_quote_expires_after_48_hours(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, _seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    assert run_once(db, CONFIG, clock.now() + timedelta(hours=47, minutes=59)).fired == 0
    result = run_once(db, CONFIG, clock.now() + timedelta(hours=48))
    assert result.fired == 1
    deal = deal_row(db, deal_id)
    assert deal.state == "expired"
    assert event_types(db, deal_id)[-1] == "NEGOTIATION_TIMEOUT"
    with db.session(write=False) as s:
        last = list(chain.deal_events(s, deal_id))[-1]
        assert (last.actor_type, last.payload["rule"]) == ("system", "NEG-T01")
        assert chain.verify_deal(s, deal).valid
        statuses = dict(
            s.execute(
                select(m.Timer.status, func.count())
                .where(m.Timer.deal_id == deal_id)
                .group_by(m.Timer.status)
            ).all()
        )
    assert statuses == {"fired": 1, "cancelled": 1}


def test_a_timer_of_a_state_already_left_never_fires(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    clock.advance(hours=2)
    move(
        db, clock, seller, deal_id, "send-quote", terms={"unit_price": "50.00", "lead_time_days": 7}
    )
    assert run_once(db, CONFIG, clock.now() + timedelta(hours=60)).fired == 0
    assert deal_row(db, deal_id).state == "quote-pending"
    assert "NEGOTIATION_TIMEOUT" not in event_types(db, deal_id)


def test_an_unanswered_counter_expires_after_24_hours(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    move(
        db, clock, seller, deal_id, "send-quote", terms={"unit_price": "50.00", "lead_time_days": 7}
    )
    clock.advance(hours=1)
    move(
        db,
        clock,
        buyer,
        deal_id,
        "counter",
        terms={"unit_price": "45.00"},
        message="Volume discount",
    )
    run_once(db, CONFIG, clock.now() + timedelta(hours=24))
    assert deal_row(db, deal_id).state == "expired"
    assert event_types(db, deal_id)[-1] == "COUNTER_EXPIRED"


def test_quote_expiring_reminder_is_recorded_for_both_parties(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    valid_until = clock.now() + timedelta(days=2)
    move(db, clock, seller, deal_id, "send-quote",
         terms={"unit_price": "50.00", "lead_time_days": 7, "valid_until": valid_until.isoformat()})  # fmt: skip
    assert run_once(db, CONFIG, valid_until - timedelta(hours=24)).fired == 1
    with db.session(write=False) as s:
        reminders = s.scalars(
            select(m.Notification).where(m.Notification.name == "quote-expiring")
        ).all()
    assert {n.user_id for n in reminders} == {buyer.id, seller.id}
    assert deal_row(db, deal_id).state == "quote-pending"
    run_once(db, CONFIG, valid_until)
    assert event_types(db, deal_id)[-1] == "QUOTE_EXPIRED"


def test_catching_up_after_downtime_fires_only_the_first_due_timer(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, _seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    # 60 days later both NEG-T01 (48 h) and NEG-T04 (30 days) are past due.
    result = run_once(db, CONFIG, clock.now() + timedelta(days=60))
    assert result.fired == 1
    assert event_types(db, deal_id).count("NEGOTIATION_TIMEOUT") == 1


@pytest.mark.skipif(
    not PG_URL,
    reason="several workers claiming timers needs PostgreSQL (DEALROOM_TEST_DATABASE_URL)",
)
def test_four_workers_fire_every_due_timer_exactly_once(
    db: Database, clock: TestClock, parties
) -> None:  # type: ignore[no-untyped-def]
    buyer, _seller, listing = parties
    count = 120
    deal_ids = {request_quote(db, clock, buyer, listing) for _ in range(count)}
    when = clock.now() + timedelta(hours=49)

    def work() -> int:
        # A deal busy in another worker is retried on the next pass.
        return sum(run_once(db, CONFIG, when).fired for _ in range(3))

    fired = race([work] * 4)
    assert sum(fired) == count
    with db.session(write=False) as s:
        timeouts = s.execute(
            select(m.Event.deal_id, func.count())
            .where(m.Event.type == "NEGOTIATION_TIMEOUT")
            .group_by(m.Event.deal_id)
        ).all()
        assert {d for d, _ in timeouts} == deal_ids
        assert all(n == 1 for _, n in timeouts)
        for deal_id in deal_ids:
            assert chain.verify_deal(s, s.get(m.Deal, deal_id)).valid  # type: ignore[arg-type]
