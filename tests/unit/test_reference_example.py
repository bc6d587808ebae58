"""RFQ-2026-0042, the rfq reference's worked example (sections 2.4 and 4.2), move by move.

The buyer requests 1000 units; the seller quotes 50.00 SAR, 7 days lead, valid until
2026-02-08; the buyer counters 45.00; the seller counters 47.00 with 5 days lead; the
buyer accepts, and the order for 47,000.00 is created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import factories
from dealroom import processes
from dealroom.domain import engine
from dealroom.domain.quotes import diff
from dealroom.domain.state import Outcome, Payload

RFQ = processes.builtin("rfq")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=UTC)


#: (time, transition, actor role, payload) from the reference timeline.
TIMELINE = [
    (
        at(1, 9),
        "request-quote",
        "buyer",
        Payload(terms={"quantity": 1000}, message="Need for Q2 production"),
    ),
    (
        at(1, 14, 15),
        "send-quote",
        "seller",
        Payload(
            terms={
                "unit_price": "50.00",
                "lead_time_days": 7,
                "valid_until": "2026-02-08T00:00:00Z",
            }
        ),
    ),
    (
        at(2, 9),
        "counter",
        "buyer",
        Payload(
            terms={"unit_price": "45.00"}, message="Volume discount expected for this quantity"
        ),
    ),
    (
        at(2, 14),
        "counter",
        "seller",
        Payload(
            terms={"unit_price": "47.00", "lead_time_days": 5},
            message="Best price with expedited delivery",
        ),
    ),
    (at(2, 15), "accept", "buyer", Payload(reason="Terms acceptable")),
]


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    deal = factories.new_deal(RFQ)
    out = []
    for now, name, role, payload in TIMELINE:
        o = engine.fire(RFQ, deal, name, factories.actor(role), payload, now=now)
        out.append(o)
        deal = o.deal
    return out


def test_the_negotiation_ends_accepted(outcomes):
    assert [o.to_state for o in outcomes] == [
        "quote-requested",
        "quote-pending",
        "counter-pending",
        "quote-pending",
        "accepted",
    ]


def test_events_are_recorded_in_the_reference_order(outcomes):
    events = [e for o in outcomes for e in o.events]
    assert [e.type for e in events] == list(factories.REFERENCE_EVENTS)
    assert [e.actor_type for e in events] == [
        "buyer",
        "seller",
        "buyer",
        "seller",
        "buyer",
        "system",
    ]


def test_request_records_quantity_and_message(outcomes):
    created = outcomes[0].events[0]
    assert created.payload["request"] == {"quantity": 1000, "message": "Need for Q2 production"}
    assert outcomes[0].quote is None  # the request is not a quote version


def test_quote_sent_is_version_1_valid_until_february_8(outcomes):
    sent = outcomes[1].events[0]
    assert sent.payload["version"] == 1
    assert sent.payload["terms"]["unit_price"] == "50.00"
    assert sent.payload["terms"]["lead_time_days"] == 7
    assert sent.payload["terms"]["valid_until"] == "2026-02-08T00:00:00.000000Z"


def test_buyer_counter_keeps_the_lead_time_and_carries_the_message(outcomes):
    counter = outcomes[2]
    assert counter.quote.number == 2
    assert counter.quote.terms.unit_price == Decimal("45.00")
    assert counter.quote.terms.lead_time_days == 7
    assert counter.events[0].payload["message"] == "Volume discount expected for this quantity"


def test_seller_revision_shows_price_and_lead_time_change(outcomes):
    revised = outcomes[3].events[0]
    assert revised.payload["version"] == 3
    assert revised.payload["price_change_pct"] == "-6.00"
    assert revised.payload["lead_time_change_days"] == -2
    assert revised.from_state == "counter-pending"
    assert revised.to_state == "quote-pending"


def test_acceptance_names_the_version_and_the_reason(outcomes):
    accepted = outcomes[4].events[0]
    assert accepted.payload["version"] == 3
    assert accepted.payload["reason"] == "Terms acceptable"


def test_accepted_version_is_47_sar_with_its_change_from_the_first_quote(outcomes):
    deal = outcomes[-1].deal
    v = deal.accepted
    assert v is not None
    assert v.number == 3
    assert v.created_by_role == "seller"
    assert v.terms.total == Decimal("47000.00")
    assert v.price_change_pct == Decimal("-6.00")
    assert v.lead_time_change_days == -2
    assert [x.status for x in deal.versions] == ["countered", "countered", "accepted"]


def test_diff_of_first_and_accepted_version_reads_like_the_reference(outcomes):
    v1, _, v3 = outcomes[-1].deal.versions
    assert diff(v1, v3).summary == "Price reduced 6%, lead time reduced 2 days"


def test_order_is_created_for_47000(outcomes):
    final = outcomes[-1]
    assert final.effects[0].name == "create-order"
    assert final.effects[0].params == {"version": 3, "total": "47000.00", "currency": "SAR"}
    order_event = final.events[-1]
    assert order_event.type == "ORDER_CREATED"
    assert order_event.payload["total"] == "47000.00"


def test_accepted_deal_has_no_timers_left(outcomes):
    assert outcomes[-1].timers == ()


def test_deal_counts_rounds_and_moves(outcomes):
    deal = outcomes[-1].deal
    assert deal.transition_count == 5
    assert deal.proposals == 3
    assert deal.round == 2
    assert deal.initiated_at == at(1, 9)
    assert deal.last_move_at == at(2, 15)
