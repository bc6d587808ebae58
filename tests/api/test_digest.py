"""The morning digest: at the user's local hour, grouped per deal, quiet activity only,
once a day, each bell item in at most one digest, whatever the number of workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.notifications import preferences
from dealroom.services.uow import session_scope
from dealroom.worker import run_once
from inbox import SmtpServer, body, mail_config, running_smtp
from people import add_user
from races import side_by_side
from servicedeals import in_tx, make_parties, move, request_quote

#: 08:00 in Riyadh (UTC+3, no daylight saving) the day after T0 (2026-02-01 09:00 UTC).
RIYADH_8AM = datetime(2026, 2, 2, 5, 0, tzinfo=UTC)


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    return make_parties(db, clock)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from running_smtp()


def choose(db: Database, clock: TestClock, user: m.User, **prefs: object) -> None:
    in_tx(db, clock, lambda uow: preferences.update(uow, user, **prefs))  # type: ignore[arg-type]


def second_listing(db: Database, clock: TestClock, owner: m.User, title: str) -> str:
    with session_scope(db) as s:
        row = m.Listing(owner_id=owner.id, title=title, currency="SAR", unit_price=Decimal("12.00"),
                        quantity=500, process="rfq", created_at=clock.now(), updated_at=clock.now())  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def ref_of(db: Database, deal_id: str) -> str:
    with db.session(write=False) as s:
        return str(s.scalar(select(m.Deal.ref).where(m.Deal.id == deal_id)))


def busy_negotiation(
    db: Database, clock: TestClock, buyer: m.User, seller: m.User, listing: str
) -> str:
    """A request and three counter-offers from the buyer; the seller's latest price is 47.50,
    the buyer's last counter 47.00."""
    deal_id = request_quote(db, clock, buyer, listing)
    clock.advance(minutes=10)
    move(
        db, clock, seller, deal_id, "send-quote", terms={"unit_price": "50.00", "lead_time_days": 7}
    )
    for buyer_price, seller_price in (("45.00", "48.00"), ("46.00", "47.50"), ("47.00", None)):
        clock.advance(minutes=10)
        move(
            db,
            clock,
            buyer,
            deal_id,
            "counter",
            terms={"unit_price": buyer_price},
            message="Closer?",
        )
        if seller_price:
            clock.advance(minutes=10)
            move(
                db,
                clock,
                seller,
                deal_id,
                "counter",
                terms={"unit_price": seller_price},
                message="Best I can do",
            )
    return deal_id


def test_a_riyadh_digest_goes_out_at_8_local_grouped_per_deal_and_not_before(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, listing = parties
    choose(db, clock, seller, email="digest", digest_hour=8, timezone="Asia/Riyadh")
    config = mail_config(smtp.url)
    busy = busy_negotiation(db, clock, buyer, seller, listing)
    clock.advance(minutes=10)
    quiet = request_quote(db, clock, buyer, second_listing(db, clock, seller, "Hex bolts M12"))
    seen = request_quote(db, clock, buyer, second_listing(db, clock, seller, "Washers"))
    read = request_quote(db, clock, buyer, second_listing(db, clock, seller, "Nuts"))
    with session_scope(db) as s:  # the seller watched one deal live and read another's bell item
        s.execute(
            update(m.Notification)
            .where(m.Notification.deal_id == seen)
            .values(seen_live_at=clock.now())
        )
        s.execute(
            update(m.Notification).where(m.Notification.deal_id == read).values(read_at=clock.now())
        )

    before = run_once(db, config, RIYADH_8AM - timedelta(seconds=1))
    assert before.digests == 0
    assert smtp.inbox.to("sami@parts.test") == []  # digest users get no immediate email

    at_eight = run_once(db, config, RIYADH_8AM)
    assert at_eight.digests == 1
    [digest] = smtp.inbox.to("sami@parts.test")
    assert digest["Subject"] == "Your dealroom digest: 5 updates on 2 deals"
    text = body(digest, "plain")
    assert "Good morning Sami Seller," in text
    busy_line = f"{ref_of(db, busy)}: 3 counter-offers, 1 request; latest 47.00 SAR"
    assert f"* 4 updates on {busy_line}" in text
    assert f"* 1 update on {ref_of(db, quiet)}: 1 request" in text
    assert ref_of(db, seen) not in text
    assert ref_of(db, read) not in text
    assert f"https://deals.example.test/deals/{busy}" in text
    assert text.index(ref_of(db, quiet)) < text.index(ref_of(db, busy))  # latest activity first
    html = body(digest, "html")
    assert f'href="https://deals.example.test/deals/{busy}"' in html
    assert "3 counter-offers" in html

    # Later the same day: nothing more, even with new activity.
    clock.set(RIYADH_8AM + timedelta(hours=2))
    move(db, clock, seller, busy, "accept")
    assert run_once(db, config, RIYADH_8AM + timedelta(hours=14)).digests == 0
    # Next morning: only what is new.
    assert (
        run_once(db, config, RIYADH_8AM + timedelta(days=1)).digests == 0
    )  # the seller moved last
    assert len(smtp.inbox.to("sami@parts.test")) == 1


def test_each_bell_item_goes_into_one_digest_only(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, listing = parties
    choose(db, clock, seller, email="digest", digest_hour=8, timezone="Asia/Riyadh")
    config = mail_config(smtp.url)
    first = request_quote(db, clock, buyer, listing)
    run_once(db, config, RIYADH_8AM)
    clock.set(RIYADH_8AM + timedelta(hours=3))
    second = request_quote(db, clock, buyer, second_listing(db, clock, seller, "Hex bolts M12"))
    run_once(db, config, RIYADH_8AM + timedelta(days=1))
    first_mail, second_mail = smtp.inbox.to("sami@parts.test")
    assert ref_of(db, first) in body(first_mail, "plain")
    assert ref_of(db, second) not in body(first_mail, "plain")
    assert ref_of(db, second) in body(second_mail, "plain")
    assert ref_of(db, first) not in body(second_mail, "plain")
    assert (
        second_mail["Subject"]
        == f"Your dealroom digest: 1 update on {ref_of(db, second)}: 1 request"
    )
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.DigestItem)) == 2
        dates = s.scalars(
            select(m.QueuedEmail.digest_date)
            .where(m.QueuedEmail.kind == "digest")
            .order_by(m.QueuedEmail.id)
        ).all()
    assert [str(d) for d in dates] == ["2026-02-02", "2026-02-03"]


def test_moving_the_digest_hour_never_makes_a_second_digest_on_one_day(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, listing = parties
    choose(db, clock, seller, email="digest", digest_hour=8, timezone="Asia/Riyadh")
    config = mail_config(smtp.url)
    request_quote(db, clock, buyer, listing)
    run_once(db, config, RIYADH_8AM)
    clock.set(RIYADH_8AM + timedelta(hours=1))
    choose(db, clock, seller, digest_hour=20)  # 20:00 Riyadh is 17:00 UTC, still "today"
    later = request_quote(db, clock, buyer, second_listing(db, clock, seller, "Hex bolts M12"))
    assert run_once(db, config, RIYADH_8AM + timedelta(hours=12)).digests == 0
    assert run_once(db, config, RIYADH_8AM + timedelta(days=1, hours=12)).digests == 1
    mails = smtp.inbox.to("sami@parts.test")
    assert len(mails) == 2
    assert ref_of(db, later) in body(mails[1], "plain")


def test_a_worker_down_for_days_sends_one_digest_not_one_per_missed_day(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, listing = parties
    choose(db, clock, seller, email="digest", digest_hour=8, timezone="Asia/Riyadh")
    request_quote(db, clock, buyer, listing)
    config = mail_config(smtp.url)
    assert run_once(db, config, RIYADH_8AM + timedelta(days=3, hours=1)).digests == 1
    assert run_once(db, config, RIYADH_8AM + timedelta(days=3, hours=2)).digests == 0
    with db.session(write=False) as s:
        pref = s.get(m.UserPreference, seller.id)
        assert pref is not None
        assert pref.next_digest_at == RIYADH_8AM + timedelta(days=4)
        digests = select(m.QueuedEmail.digest_date).where(m.QueuedEmail.kind == "digest")
        assert [str(d) for d in s.scalars(digests)] == ["2026-02-05"]


def test_two_workers_send_exactly_one_digest_per_user(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, _seller, _listing = parties
    sellers = []
    for i in range(12):
        person = add_user(db, clock.now(), f"seller{i}@parts.test")
        with db.session(write=False) as s:
            seller = s.get(m.User, person.id)
        assert seller is not None
        choose(db, clock, seller, email="digest", digest_hour=8, timezone="Asia/Riyadh")
        request_quote(db, clock, buyer, second_listing(db, clock, seller, f"Part {i}"))
        sellers.append(seller)
    config = mail_config(smtp.url)
    counts = side_by_side(lambda: run_once(db, config, RIYADH_8AM).digests)
    assert sum(counts) == 12
    for seller in sellers:
        assert len(smtp.inbox.to(seller.email)) == 1, seller.email


@pytest.mark.parametrize("mode", ["immediate", "off"])
def test_users_not_on_the_digest_get_none(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer, mode: str
) -> None:
    buyer, seller, listing = parties
    choose(db, clock, seller, email=mode)
    request_quote(db, clock, buyer, listing)
    result = run_once(db, mail_config(smtp.url), RIYADH_8AM + timedelta(days=1))
    assert result.digests == 0
    assert len(smtp.inbox.to("sami@parts.test")) == (1 if mode == "immediate" else 0)
