"""Deals made and moved through the services, as the API makes them but without HTTP, with
a clock the test moves: for what happens after a commit (email, digests, webhooks, timers,
trust). Free functions for a test or two; `Room` when a test module lives on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.engine import Payload
from dealroom.services import deals, views
from dealroom.services.audit import chain
from dealroom.services.uow import UnitOfWork, session_scope, transaction
from dealroom.worker import PassResult, run_once
from inbox import mail_config
from people import add_user

#: The services' configuration: mail has nowhere to go unless a test says where.
CONFIG = mail_config()
#: A seller's first quote on the rfq listings made here.
QUOTE = {"unit_price": "50.00", "lead_time_days": 7}


def in_tx(
    db: Database, clock: TestClock, fn: Callable[[UnitOfWork], Any], *, config: Config = CONFIG
) -> Any:
    with transaction(db, now=clock.now(), config=config) as uow:
        return fn(uow)


def user_row(db: Database, clock: TestClock, email: str, **kw: Any) -> m.User:
    """A user (`people.add_user`'s options), as the services take one."""
    person = add_user(db, clock.now(), email, **kw)
    with db.session(write=False) as s:
        row = s.get(m.User, person.id)
        assert row is not None
        return row


def add_listing(db: Database, clock: TestClock, owner_id: str, **fields: Any) -> str:
    """A seller's listing, an rfq for 1,000 industrial bearings at 50.00 SAR unless told."""
    with session_scope(db) as s:
        row = m.Listing(
            owner_id=owner_id,
            title=fields.pop("title", "Industrial bearings"),
            currency=fields.pop("currency", "SAR"),
            unit_price=Decimal(fields.pop("unit_price", "50.00")),
            quantity=fields.pop("quantity", 1000),
            process=fields.pop("process", "rfq"),
            created_at=clock.now(),
            updated_at=clock.now(),
            **fields,
        )
        s.add(row)
        s.flush()
        return row.id


def make_parties(db: Database, clock: TestClock) -> tuple[m.User, m.User, str]:
    """A buyer, a seller and the seller's rfq listing."""
    buyer = user_row(db, clock, "amal@acme.test", name="Amal Buyer", organization="Acme Corp")
    seller = user_row(db, clock, "sami@parts.test", name="Sami Seller", organization="Parts Inc")
    listing = add_listing(db, clock, seller.id, title="Industrial bearings <6204-2RS>")
    return buyer, seller, listing


def request_quote(db: Database, clock: TestClock, buyer: m.User, listing: str) -> str:
    result = in_tx(
        db, clock,
        lambda uow: deals.open_deal(uow, buyer, listing_id=listing, transition="request-quote",
                                    payload=Payload(terms={"quantity": 1000}, message="Need them for Q2")),
    )  # fmt: skip
    return str(result.deal.id)


def _fire(uow: UnitOfWork, who: m.User, deal_id: str, name: str, payload: Payload) -> None:
    deal = uow.session.get(m.Deal, deal_id)
    assert deal is not None
    deals.fire_transition(uow, who, deal_id=deal_id, name=name,
                          expected_version=deal.version, payload=payload)  # fmt: skip


def move(
    db: Database, clock: TestClock, user: m.User, deal_id: str, name: str, **payload: Any
) -> None:
    in_tx(db, clock, lambda uow: _fire(uow, user, deal_id, name, Payload(**payload)))


def negotiate(db: Database, clock: TestClock, buyer: m.User, seller: m.User, listing: str) -> str:
    """A request for quote, the seller's quote at 50.00 five minutes later, and the buyer's
    counter at 45.00 five minutes after that."""
    deal_id = request_quote(db, clock, buyer, listing)
    clock.advance(minutes=5)
    move(db, clock, seller, deal_id, "send-quote", terms=QUOTE)
    clock.advance(minutes=5)
    move(db, clock, buyer, deal_id, "counter", terms={"unit_price": "45.00"},
         message="Volume discount")  # fmt: skip
    return deal_id


@dataclass
class Room:
    """A buyer, a seller and the database, with a clock the test moves."""

    db: Database
    clock: TestClock
    buyer: m.User
    seller: m.User
    config: Config = CONFIG

    def tx(self, fn: Callable[[UnitOfWork], Any]) -> Any:
        return in_tx(self.db, self.clock, fn, config=self.config)

    def listing(self, process: str, **fields: Any) -> str:
        return add_listing(self.db, self.clock, self.seller.id, process=process, **fields)

    def open(self, listing_id: str, transition: str, **payload: Any) -> str:
        result = self.tx(
            lambda uow: deals.open_deal(uow, self.buyer, listing_id=listing_id,
                                        transition=transition, payload=Payload(**payload))
        )  # fmt: skip
        return str(result.deal.id)

    def move(self, who: m.User, deal_id: str, name: str, **payload: Any) -> None:
        self.tx(lambda uow: _fire(uow, who, deal_id, name, Payload(**payload)))

    def fire(self, at: datetime) -> PassResult:
        return run_once(self.db, self.config, at)

    # -- reading back --

    def deal(self, deal_id: str) -> m.Deal:
        with self.db.session(write=False) as s:
            deal = s.get(m.Deal, deal_id)
            assert deal is not None
            return deal

    def events(self, deal_id: str) -> list[m.Event]:
        with self.db.session(write=False) as s:
            return list(chain.deal_events(s, deal_id))

    def pending(self, deal_id: str) -> list[tuple[str, str | None, datetime]]:
        """(name, rule, due) of the deal's pending timers, soonest first."""
        with self.db.session(write=False) as s:
            return [(t.name, t.rule, t.due_at) for t in views.pending_timers(s, deal_id)]

    def due(self, deal_id: str, name_or_rule: str) -> datetime:
        return next(d for n, r, d in self.pending(deal_id) if name_or_rule in (n, r))

    def bell(self, deal_id: str, name: str) -> set[str]:
        with self.db.session(write=False) as s:
            rows = s.scalars(
                select(m.Notification.user_id).where(
                    m.Notification.deal_id == deal_id, m.Notification.name == name
                )
            )
            return set(rows)

    def expect_expiry(
        self,
        deal_id: str,
        *,
        at: datetime,
        event: str,
        rule: str | None,
        state: str,
        final: bool = True,
    ) -> m.Event:
        """Nothing fires a second before `at`; at `at` the deal moves and says why; a deal
        that reached a final state has nothing left pending."""
        before = self.deal(deal_id).state
        self.fire(at - timedelta(seconds=1))
        assert self.deal(deal_id).state == before, "fired early"
        assert self.fire(at).fired >= 1
        deal = self.deal(deal_id)
        assert deal.state == state
        last = next(e for e in reversed(self.events(deal_id)) if e.type == event)
        assert (last.actor_type, last.actor_id, last.to_state) == ("system", None, state)
        assert last.created_at == at
        if rule is not None:
            assert last.payload["rule"] == rule
        if final:
            assert self.pending(deal_id) == []
        with self.db.session(write=False) as s:
            assert chain.verify_deal(s, deal).valid
        return last
