"""Queued email: rendered from Jinja2 templates, sent by the worker through a real
SMTP server (aiosmtpd on 127.0.0.1), retried when the server is down, never sent twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import dealroom.processes as builtin_processes
from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.loader import load_file
from dealroom.domain.state import Payload
from dealroom.notify import email, render, transports
from dealroom.services import deals
from dealroom.services.uow import session_scope
from dealroom.worker import run_once
from inbox import BASE_URL, SmtpServer, body, mail_config, queued_emails, running_smtp
from races import side_by_side
from servicedeals import add_listing, in_tx, make_parties, move, request_quote

PROCESS_DIR = Path(builtin_processes.__file__).parent


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from running_smtp()


# --- deals made through the services, as the API makes them -------------------------------


@pytest.fixture
def parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    return make_parties(db, clock)


# --- templates ----------------------------------------------------------------------------


def test_every_notification_of_the_built_in_processes_has_a_text_and_an_html_template() -> None:
    missing = []
    for name in ("rfq", "market", "offer", "negotiation"):
        process = load_file(PROCESS_DIR / f"{name}.toml")
        missing += [
            f"{name}: {n.template}"
            for n in process.notifications
            if n.template not in render.template_names()
        ]
    assert missing == []
    assert render.template_for("some-imported-template") == render.GENERIC


def sample_context(title: str) -> dict[str, Any]:
    person = {"id": "u1", "name": "Amal", "organization": "Acme", "display": "Amal (Acme)"}
    quote = {"number": 2, "by": "buyer", "price": "45.00 SAR", "quantity": "1,000", "total": "45,000.00 SAR",
             "currency": "SAR", "lead_time_days": 7, "valid_until": "3 Feb 2026, 12:00 (Asia/Riyadh)",
             "change": "-10.00%", "message": "Volume discount", "status": "pending"}  # fmt: skip
    return {
        "notification": "x", "headline": "Something happened", "transition": "counter",
        "recipient": {**person, "role": "seller"}, "other": person, "buyer": person, "seller": person,
        "who": "Amal", "actor": "buyer",
        "deal": {"id": "d1", "ref": "DEAL-2026-0042", "state": "quote pending", "process": "rfq", "url": f"{BASE_URL}/deals/d1"},
        "listing": {"title": title, "currency": "SAR", "unit_price": "50.00 SAR"},
        "quote": quote, "previous": quote, "order": {"ref": "ORD-2026-0089", "total": "45,000.00 SAR"},
        "message": "Can you do <b>45</b>?", "reason": None, "request": {"quantity": 1000},
        "reminder_due": "2 Feb 2026, 09:00 (UTC)", "base_url": BASE_URL,
    }  # fmt: skip


def test_every_template_renders_and_html_is_escaped_while_text_is_not() -> None:
    title = 'Bearings <script>alert("x")</script>'
    for name in sorted(render.template_names() - {"_digest", "_plain", "_base"}):
        r = render.render(name, sample_context(title), to="seller@example.test")
        assert r.subject.startswith("[DEAL-2026-0042]"), name
        assert "\n" not in r.subject
        assert f"{BASE_URL}/deals/d1" in r.text, name
        assert f'href="{BASE_URL}/deals/d1"' in r.html, name
        assert "<script>" not in r.html, name
        assert "&lt;script&gt;" in r.html, name
        assert title in r.text, name
        assert "<b>45</b>" not in r.html, name
        assert "<b>45</b>" in r.text, name


# --- immediate email ----------------------------------------------------------------------


def test_a_counter_offer_mails_the_seller_at_once_with_parties_ref_amounts_and_link(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
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

    result = run_once(db, mail_config(smtp.url), clock.now())

    assert result.emails_sent == 3  # request -> seller, quote -> buyer, counter -> seller
    with db.session(write=False) as s:
        deal = s.get(m.Deal, deal_id)
        assert deal is not None
        ref = deal.ref
    to_seller = smtp.inbox.to("sami@parts.test")
    assert [msg["Subject"] for msg in to_seller] == [
        f"[{ref}] New request for quote: Industrial bearings <6204-2RS>",
        f"[{ref}] Counter-offer from Amal Buyer: 45.00 SAR",
    ]
    assert "Terms, version" not in body(to_seller[0], "plain")  # a request is not a quote
    counter = to_seller[1]
    assert counter["From"] == "dealroom <no-reply@dealroom.localhost>"
    assert counter["To"] == "Sami Seller <sami@parts.test>"
    assert counter["X-Dealroom-Deal"] == ref
    text = body(counter, "plain")
    for expected in (
        "Hello Sami Seller,",
        "Amal Buyer made a counter-offer on “Industrial bearings <6204-2RS>”: 45.00 SAR per unit for 1,000 units (45,000.00 SAR), -10.00% on the previous price.",
        "“Volume discount”",
        f"{ref} · Industrial bearings <6204-2RS>",
        "Buyer:  Amal Buyer (Acme Corp)",
        "Seller: Sami Seller (Parts Inc)",
        "Terms, version 2 (by the buyer): 45.00 SAR per unit × 1,000 = 45,000.00 SAR",
        "Before: 50.00 SAR per unit × 1,000 = 50,000.00 SAR (version 1)",
        f"Open the deal room: {BASE_URL}/deals/{deal_id}",
    ):
        assert expected in text, expected
    html = body(counter, "html")
    assert f'href="{BASE_URL}/deals/{deal_id}"' in html
    assert "Industrial bearings &lt;6204-2RS&gt;" in html
    assert "<6204-2RS>" not in html
    assert "45,000.00 SAR" in html

    quote_mail = smtp.inbox.to("amal@acme.test")
    assert [msg["Subject"] for msg in quote_mail] == [f"[{ref}] Quote received: 50.00 SAR per unit"]
    assert "Sami Seller sent a quote" in body(quote_mail[0], "plain")

    rows = queued_emails(db)
    assert {r.status for r in rows} == {"sent"}
    assert sorted(r.message_id for r in rows) == sorted(
        str(msg["Message-ID"]) for msg in smtp.inbox.messages
    )
    assert run_once(db, mail_config(smtp.url), clock.now() + timedelta(hours=1)).emails_sent == 0
    assert len(smtp.inbox.messages) == 3


def test_an_smtp_outage_is_retried_later_and_the_mail_then_goes_once(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str]
) -> None:
    buyer, _seller, listing = parties
    request_quote(db, clock, buyer, listing)
    server = SmtpServer()  # not started: connections are refused
    config = mail_config(server.url)

    down = run_once(db, config, clock.now())
    assert (down.emails_sent, down.emails_retrying) == (0, 1)
    [row] = queued_emails(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now() + email.RETRY_BASE
    assert row.last_error
    assert "TransportDown" in row.last_error

    server.start()
    try:
        assert run_once(db, config, clock.now() + timedelta(seconds=59)).emails_sent == 0
        assert server.inbox.messages == []
        assert run_once(db, config, clock.now() + timedelta(seconds=60)).emails_sent == 1
        assert run_once(db, config, clock.now() + timedelta(hours=2)).emails_sent == 0
        assert len(server.inbox.messages) == 1
        [row] = queued_emails(db)
        assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
        assert row.sent_at == clock.now() + timedelta(seconds=60)
    finally:
        server.stop()


def test_a_mailbox_the_server_refuses_fails_at_once_without_retrying(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, _seller, listing = parties
    smtp.inbox.refuse.add("sami@parts.test")
    request_quote(db, clock, buyer, listing)
    result = run_once(db, mail_config(smtp.url), clock.now())
    assert (result.emails_sent, result.emails_failed) == (0, 1)
    [row] = queued_emails(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error
    assert "550" in row.last_error


def test_retries_stop_after_a_day(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str]
) -> None:
    buyer, _seller, listing = parties
    request_quote(db, clock, buyer, listing)
    config = mail_config(SmtpServer().url)  # never started
    when = clock.now()
    for _ in range(60):
        run_once(db, config, when)
        [row] = queued_emails(db)
        if row.status != "pending":
            break
        when = row.next_attempt_at
    assert row.status == "failed"
    assert when == clock.now() + timedelta(days=1)  # the last attempt falls at the end of the day
    assert 20 <= row.attempts <= 40


def test_two_workers_never_send_one_email_twice(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, _seller, listing = parties
    count = 24
    for _ in range(count):
        request_quote(db, clock, buyer, listing)
    config = mail_config(smtp.url)
    sent = side_by_side(lambda: run_once(db, config, clock.now()).emails_sent)

    assert sum(sent) == count
    ids = [str(msg["Message-ID"]) for msg in smtp.inbox.messages]
    assert len(ids) == count
    assert len(set(ids)) == count
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(m.QueuedEmail.status == "sent")) == count


def test_without_smtp_mail_lands_as_eml_files_in_the_mail_folder(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], tmp_path: Path
) -> None:
    buyer, _seller, listing = parties
    request_quote(db, clock, buyer, listing)
    config = mail_config(mail_dir=tmp_path / "mail")
    assert transports.mail_destination(config) == str((tmp_path / "mail").resolve())
    assert run_once(db, config, clock.now()).emails_sent == 1
    [path] = list((tmp_path / "mail").glob("*.eml"))
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert str(msg["Subject"]).endswith("New request for quote: Industrial bearings <6204-2RS>")
    assert "Amal Buyer (Acme Corp) asks you for a quote" in body(msg, "plain")
    assert body(msg, "html").startswith("<!DOCTYPE html>")


def test_a_continuous_worker_pass_gives_mail_a_slice_and_comes_back_for_the_rest(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], tmp_path: Path
) -> None:
    """Deadlines never wait behind a mail backlog: the continuous worker sends for at most
    `DELIVERY_SLICE` seconds, then fires what came due and sends on (`PassResult.more`)."""
    buyer, seller, listing = parties
    deal_id = request_quote(db, clock, buyer, listing)
    move(db, clock, seller, deal_id, "send-quote", terms={"unit_price": "50.00"})
    config = mail_config(mail_dir=tmp_path / "mail")
    spent = run_once(db, config, clock.now(), delivery_slice=0.0)
    assert (spent.emails_sent, spent.more) == (0, True)
    assert len(queued_emails(db)) == 2
    rest = run_once(db, config, clock.now(), delivery_slice=60.0)
    assert (rest.emails_sent, rest.more) == (2, False)
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 2


def test_a_config_without_any_mail_transport_keeps_emails_queued(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str]
) -> None:
    buyer, _seller, listing = parties
    request_quote(db, clock, buyer, listing)
    assert transports.mail_destination(mail_config()) is None
    assert run_once(db, mail_config(), clock.now()).emails_sent == 0
    assert [r.status for r in queued_emails(db)] == ["pending"]


def test_market_offers_and_counters_are_told_apart(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, _ = parties
    listing = add_listing(db, clock, seller.id, title="Pallet racking", currency="EUR",
                          unit_price="120.00", quantity=40, process="market")  # fmt: skip
    opened = in_tx(
        db, clock,
        lambda uow: deals.open_deal(uow, buyer, listing_id=listing, transition="make-offer",
                                    payload=Payload(terms={"unit_price": "100.00", "quantity": 40})),
    )  # fmt: skip
    clock.advance(minutes=30)
    move(
        db,
        clock,
        seller,
        opened.deal.id,
        "counter",
        terms={"unit_price": "110.00"},
        message="Meet me halfway",
    )
    run_once(db, mail_config(smtp.url), clock.now())
    ref = opened.deal.ref
    [offer] = smtp.inbox.to("sami@parts.test")
    [counter] = smtp.inbox.to("amal@acme.test")
    assert offer["Subject"] == f"[{ref}] New offer from Amal Buyer: 100.00 EUR"
    assert counter["Subject"] == f"[{ref}] Counter-offer from Sami Seller: 110.00 EUR"
    assert (
        "Sami Seller made a counter-offer on “Pallet racking”: 110.00 EUR per unit for 40 units (4,400.00 EUR)"
        in body(counter, "plain")
    )


def test_the_sharetribe_negotiation_uses_its_own_templates(
    db: Database, clock: TestClock, parties: tuple[m.User, m.User, str], smtp: SmtpServer
) -> None:
    buyer, seller, _ = parties
    with session_scope(db) as s:
        row = m.Listing(owner_id=seller.id, title="Logo design", currency="USD",
                        unit_price=Decimal("300.00"), quantity=1, process="negotiation",
                        created_at=clock.now(), updated_at=clock.now())  # fmt: skip
        s.add(row)
        s.flush()
        listing = row.id
    opened = in_tx(
        db, clock,
        lambda uow: deals.open_deal(uow, buyer, listing_id=listing, transition="request-quote",
                                    payload=Payload(message="Three concepts, please")),
    )  # fmt: skip
    clock.advance(hours=1)
    move(
        db,
        clock,
        seller,
        opened.deal.id,
        "make-offer-from-request",
        terms={"unit_price": "280.00", "quantity": 1},
    )
    run_once(db, mail_config(smtp.url), clock.now())
    [request] = smtp.inbox.to("sami@parts.test")
    [offer] = smtp.inbox.to("amal@acme.test")
    assert request["Subject"] == f"[{opened.deal.ref}] New request for quote: Logo design"
    assert "“Three concepts, please”" in body(request, "plain")
    assert offer["Subject"] == f"[{opened.deal.ref}] Offer in answer to your request: 280.00 USD"
    assert "Sami Seller (Parts Inc) answered your request with an offer" in body(offer, "plain")
