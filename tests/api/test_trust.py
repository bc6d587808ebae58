"""Trust profiles from the record: answer times against each process's SLA, deals closed
and ended, reviews once published, KYC and account age. Deals are built through the
services with a moved clock, so every answer time is known to the second."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import NotFound
from dealroom.processes import builtin_text
from dealroom.services import deals, processes, trust
from dealroom.services.uow import session_scope
from servicedeals import QUOTE, Room, user_row

H = 3600
D = 24 * H


@pytest.fixture
def room(db: Database, clock: TestClock) -> Room:
    buyer = user_row(db, clock, "amal@acme.test", age_days=365)
    seller = user_row(db, clock, "nora@parts.test", age_days=30, kyc_verified=False)
    return Room(db, clock, buyer, seller)


def profile(room: Room, who: m.User) -> dict[str, Any]:
    with room.db.session(write=False) as s:
        return trust.trust_profile(s, who.id, room.clock.now())


def add_fast_market(room: Room) -> None:
    """The market process under another name, with a one-hour response-time SLA."""
    text = builtin_text("market").replace('name = "market"', 'name = "market-fast"')
    text = text.replace('response_sla = "PT24H"', 'response_sla = "PT1H"')
    with session_scope(room.db) as s:
        processes.store_process(s, text, source_format="toml", now=room.clock.now())


def wait(room: Room, seconds: int) -> datetime:
    return room.clock.advance(seconds=seconds)


def test_answer_times_are_measured_against_each_process_sla(room: Room) -> None:
    buyer, seller = room.buyer, room.seller
    add_fast_market(room)

    # rfq (SLA 24 h): won, with an order.
    won = room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})
    wait(room, 2 * H)
    room.move(seller, won, "send-quote", terms=QUOTE)  # seller 2 h: within
    wait(room, 5 * H)
    room.move(buyer, won, "counter", terms={"unit_price": "45.00"}, message="Volume")  # 5 h
    wait(room, 10 * H)
    room.tx(lambda uow: deals.post_message(uow, seller, deal_id=won, body="Checking stock"))
    wait(room, 10 * H)
    room.move(seller, won, "accept")  # seller 20 h: within 24 h

    # market-fast (SLA 1 h): lost, no order.
    lost = room.open(room.listing("market-fast"), "make-offer",
                     terms={"unit_price": "48.00", "quantity": 1000})  # fmt: skip
    wait(room, 2 * H)
    room.move(seller, lost, "counter", terms={"unit_price": "49.50"}, message="Close")  # 2 h: late
    wait(room, 1800)
    room.move(buyer, lost, "reject", reason="Too expensive")  # buyer 30 min: within 1 h

    # rfq: still open, answered after 25 h (late), then lapses: ended by the system.
    lapsed = room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})
    sent = wait(room, 25 * H)
    room.move(seller, lapsed, "send-quote", terms=QUOTE)

    assert profile(room, seller) == {
        "user_id": seller.id,
        "member_since": "2026-01-02",
        "account_age_days": 32,
        "kyc_verified": False,
        "median_response_seconds": (2 * H + 20 * H) // 2,  # of 2 h, 2 h, 20 h, 25 h
        "responses": 4,
        "responses_within_sla": 0.5,
        "deals_closed": 1,
        "deals_ended": 2,
        "completion_rate": 0.5,
        "reviews_average": None,
        "reviews_count": 0,
    }
    assert profile(room, buyer) == {
        "user_id": buyer.id,
        "member_since": "2025-02-01",
        "account_age_days": 367,
        "kyc_verified": True,
        "median_response_seconds": (5 * H + 1800) // 2,
        "responses": 2,
        "responses_within_sla": 1.0,
        "deals_closed": 1,
        "deals_ended": 2,
        "completion_rate": 0.5,
        "reviews_average": None,
        "reviews_count": 0,
    }

    # The system's expiry is no one's answer, but the deal has ended without an order.
    assert room.fire(sent + timedelta(days=7)).fired == 2  # the reminder, then the expiry
    after = profile(room, seller)
    assert (after["responses"], after["deals_ended"], after["completion_rate"]) == (4, 3, 0.3333)


def negotiate_to_review(room: Room, *, deliver_after: int, review: tuple[str, int] | None) -> str:
    """A Sharetribe negotiation up to completion, then a first review by `review[0]`."""
    buyer, seller = room.buyer, room.seller
    deal_id = room.open(room.listing("negotiation", unit_price="100.00", quantity=10),
                        "request-quote", data={"protectedData": {"brief": "10 pumps"}})  # fmt: skip
    wait(room, H)
    room.move(seller, deal_id, "make-offer-from-request",
              terms={"unit_price": "90.00", "quantity": 10})  # seller 1 h  # fmt: skip
    wait(room, H)
    room.move(buyer, deal_id, "request-payment-to-accept-offer")  # buyer 1 h
    wait(room, 300)
    room.move(buyer, deal_id, "confirm-payment")  # the buyer again: not an answer
    wait(room, deliver_after)
    room.move(seller, deal_id, "deliver")
    wait(room, D)
    room.move(buyer, deal_id, "accept-deliverable")  # buyer 24 h: on the SLA, within
    if review is not None:
        wait(room, H)
        who = buyer if review[0] == "buyer" else seller
        step = "review-1-by-customer" if review[0] == "buyer" else "review-1-by-provider"
        room.move(who, deal_id, step, data={"reviewRating": review[1], "reviewContent": "ok"})
    return deal_id


def test_reviews_count_once_published_and_are_about_the_other_party(room: Room) -> None:
    buyer, seller = room.buyer, room.seller
    both = negotiate_to_review(room, deliver_after=2 * D, review=("buyer", 4))  # seller 48 h
    wait(room, 3 * H)
    room.move(seller, both, "review-2-by-provider", data={"reviewRating": 5})  # seller 3 h
    assert room.deal(both).state == "reviewed"

    pending = negotiate_to_review(room, deliver_after=D, review=("buyer", 1))  # seller 24 h
    completed = room.clock.now() - timedelta(hours=1)
    assert room.deal(pending).state == "reviewed-by-customer"

    seller_profile = profile(room, seller)
    assert seller_profile["reviews_average"] == 4.0  # the unpublished 1 does not count yet
    assert seller_profile["reviews_count"] == 1
    assert seller_profile["responses"] == 5  # 1 h, 48 h, 3 h, 1 h, 24 h
    assert seller_profile["median_response_seconds"] == 3 * H
    assert seller_profile["responses_within_sla"] == 0.8
    # Paying creates the order (confirm-payment), so both deals count as closed; one ended.
    assert (seller_profile["deals_closed"], seller_profile["deals_ended"]) == (2, 1)
    assert seller_profile["completion_rate"] == 1.0
    buyer_profile = profile(room, buyer)
    assert (buyer_profile["reviews_average"], buyer_profile["reviews_count"]) == (5.0, 1)
    assert buyer_profile["responses"] == 4  # 1 h, 24 h, 1 h, 24 h
    assert buyer_profile["median_response_seconds"] == (H + D) // 2
    assert buyer_profile["responses_within_sla"] == 1.0

    # The review period ends: the worker publishes the buyer's review of the seller.
    assert room.fire(completed + timedelta(days=7)).fired == 1
    assert room.deal(pending).state == "reviewed"
    seller_profile = profile(room, seller)
    assert (seller_profile["reviews_average"], seller_profile["reviews_count"]) == (2.5, 2)
    assert seller_profile["deals_ended"] == 2
    assert profile(room, buyer)["reviews_count"] == 1


def test_answer_times_come_from_the_most_recent_deals_only(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    for gap in (3 * H, H):
        deal_id = room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})
        wait(room, gap)
        room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    assert profile(room, room.seller)["median_response_seconds"] == 2 * H
    monkeypatch.setattr(trust, "RECENT_DEALS", 1)
    recent = profile(room, room.seller)
    assert (recent["median_response_seconds"], recent["responses"]) == (H, 1)


def test_a_deal_shows_the_trust_profiles_of_both_parties(room: Room) -> None:
    deal_id = room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})
    wait(room, 90)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)
    deal = room.deal(deal_id)
    with room.db.session(write=False) as s:
        both = trust.trust_profiles(
            s, [deal.buyer_id, deal.seller_id, deal.buyer_id, "nobody"], room.clock.now()
        )
        assert both == {
            deal.buyer_id: trust.trust_profile(s, deal.buyer_id, room.clock.now()),
            deal.seller_id: trust.trust_profile(s, deal.seller_id, room.clock.now()),
        }
        assert trust.trust_profiles(s, [], room.clock.now()) == {}
    assert both[deal.seller_id]["median_response_seconds"] == 90
    assert both[deal.buyer_id]["responses"] == 0


def test_a_new_user_has_an_empty_record(db: Database, clock: TestClock) -> None:
    newcomer = user_row(db, clock, "new@acme.test", age_days=0)
    with db.session(write=False) as s:
        assert trust.trust_profile(s, newcomer.id, clock.now()) == {
            "user_id": newcomer.id,
            "member_since": "2026-02-01",
            "account_age_days": 0,
            "kyc_verified": True,
            "median_response_seconds": None,
            "responses": 0,
            "responses_within_sla": None,
            "deals_closed": 0,
            "deals_ended": 0,
            "completion_rate": None,
            "reviews_average": None,
            "reviews_count": 0,
        }


def test_an_unknown_user_has_no_profile(db: Database, clock: TestClock) -> None:
    with db.session(write=False) as s:
        for user_id in ("00000000-0000-0000-0000-000000000000", "", "x" * 40):
            with pytest.raises(NotFound):
                trust.trust_profile(s, user_id, clock.now())


def test_a_deal_shows_profiles_at_most_max_age_old_and_the_profile_page_is_live(room: Room) -> None:  # fmt: skip
    deal_id = room.open(room.listing("rfq"), "request-quote", terms={"quantity": 1000})
    seller = room.seller.id

    def shown(max_age: float) -> dict[str, Any]:
        with room.db.session(write=False) as s:
            return trust.cached_profiles(s, [seller], room.clock.now(), max_age=max_age)[seller]

    assert shown(60)["responses"] == 0  # computed, and kept
    wait(room, 30)
    room.move(room.seller, deal_id, "send-quote", terms=QUOTE)  # an answer 30 s in
    assert shown(60)["responses"] == 0  # 30 s old: the kept one
    assert profile(room, room.seller)["responses"] == 1  # the profile page: live
    assert shown(0)["responses"] == 1  # max_age 0: computed now
    wait(room, 29)
    assert shown(60)["responses"] == 0  # 59 s old
    wait(room, 1)
    assert shown(60)["responses"] == 1  # 60 s old: computed again, and kept
    with room.db.session(write=False) as s:  # each user once, in the order asked
        view = trust.cached_profiles(s, [seller, room.buyer.id, seller], room.clock.now(), max_age=60)  # fmt: skip
    assert list(view) == [seller, room.buyer.id]


def test_the_profile_cache_is_bounded_and_never_serves_the_future() -> None:
    cache = trust.ProfileCache(size=2)
    t0 = datetime(2026, 3, 1, 12, 0)
    for i in range(3):
        cache.put(("db", f"u{i}"), t0, {"n": i})
    assert cache.get(("db", "u0"), t0, 60) is None  # the oldest was dropped
    assert cache.get(("db", "u2"), t0, 60) == {"n": 2}
    assert cache.get(("db", "u2"), t0 - timedelta(seconds=1), 60) is None  # a clock set back
    assert cache.get(("other-db", "u2"), t0, 60) is None
    cache.clear()
    assert cache.get(("db", "u2"), t0, 60) is None
