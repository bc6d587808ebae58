"""Sample data for `dealroom demo`: people at named companies, listings, and deals in
several states across all four built-in processes.

Everything goes through the services, a unit of work per step as a request would, so
every deal has a valid hash-chained audit trail, real quote versions, timers, orders,
escrows and shipments. The deals happen over the last hours before `now`, so their
pending timers still lie ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.state import Payload
from dealroom.services import accounts, deals, listings
from dealroom.services.uow import session_scope, transaction


@dataclass(frozen=True)
class Person:
    key: str
    email: str
    name: str
    organization: str
    password: str
    roles: tuple[str, ...] = ()
    kyc_verified: bool = True
    plan: str = "paid"
    timezone: str = "Asia/Riyadh"
    age_days: int = 400

    @property
    def role_label(self) -> str:
        if self.roles:
            return ", ".join(self.roles)
        return "buyer" if self.key.startswith("buyer") else "seller"


PEOPLE: tuple[Person, ...] = (
    Person("admin", "admin@dealroom.example", "Dana Admin", "Dealroom Marketplace",
           "admin-demo-pass", roles=("admin",), timezone="UTC"),
    Person("operator", "ops@dealroom.example", "Omar Operator", "Dealroom Marketplace",
           "ops-demo-pass", roles=("operator",), timezone="UTC"),
    Person("buyer1", "amal@acme.example", "Amal Haddad", "Acme Corp", "buyer-demo-1"),
    Person("buyer2", "bilal@globex.example", "Bilal Rahman", "Globex Trading", "buyer-demo-2",
           age_days=120),
    Person("buyer3", "chen@initech.example", "Chen Wei", "Initech", "buyer-demo-3",
           timezone="Asia/Dubai", age_days=900),
    Person("seller1", "nora@parts.example", "Nora Saleh", "Parts Inc", "seller-demo-1"),
    Person("seller2", "samir@gulfsteel.example", "Samir Aziz", "Gulf Steel Co", "seller-demo-2",
           age_days=60),
    Person("seller3", "lina@techhub.example", "Lina Park", "TechHub Electronics",
           "seller-demo-3", timezone="UTC", age_days=700),
)  # fmt: skip


@dataclass(frozen=True)
class ListingSpec:
    key: str
    owner: str
    fields: dict[str, Any]


LISTINGS: tuple[ListingSpec, ...] = (
    ListingSpec("bolts", "seller1", {
        "title": "M8 hex bolts, zinc plated (box of 100)", "category": "industrial-parts",
        "description": "DIN 933, grade 8.8, zinc plated. Ships from Dammam.",
        "currency": "SAR", "unit_price": "50.00", "quantity": 1000, "min_order_qty": 100,
        "max_order_qty": 5000, "sale_mode": "negotiable", "process": "rfq",
        "attributes": {"standard": "DIN 933", "grade": "8.8"}}),
    ListingSpec("fittings", "seller1", {
        "title": "Hydraulic hose fittings, 1/2 inch BSP", "category": "industrial-parts",
        "currency": "SAR", "unit_price": "12.75", "quantity": 5000, "min_order_qty": 200,
        "sale_mode": "negotiable", "process": "rfq"}),
    ListingSpec("laptops", "seller3", {
        "title": "Dell Latitude 7420 laptops, grade A", "category": "laptops",
        "description": "Refurbished, i5 11th gen, 16 GB RAM, 512 GB SSD, 90-day warranty.",
        "currency": "USD", "unit_price": "420.00", "quantity": 200, "min_order_qty": 10,
        "sale_mode": "negotiable", "attributes": {"grade": "A", "warranty_days": 90}}),
    ListingSpec("docks", "seller3", {
        "title": "USB-C docking stations, dual 4K", "category": "electronics",
        "currency": "USD", "unit_price": "89.00", "quantity": 500, "sale_mode": "buy_now"}),
    ListingSpec("rebar", "seller2", {
        "title": "Steel rebar 12 mm, per tonne", "category": "construction",
        "description": "B500B, 12 m bars, mill certificate included.",
        "currency": "SAR", "unit_price": "2450.00", "quantity": 300, "min_order_qty": 5,
        "sale_mode": "negotiable"}),
    ListingSpec("cnc", "seller2", {
        "title": "Used CNC machining centre, Haas VF-2 (2018)", "category": "machinery",
        "description": "6,200 spindle hours, serviced yearly, tooling included.",
        "currency": "USD", "unit_price": "48000.00", "quantity": 1, "sale_mode": "negotiable",
        "process": "offer"}),
    ListingSpec("pallets", "buyer3", {
        "title": "Wanted: 5,000 EUR pallets, heat treated", "category": "logistics",
        "kind": "buy", "currency": "SAR", "unit_price": "38.00", "quantity": 5000,
        "sale_mode": "negotiable", "process": "negotiation"}),
    ListingSpec("brackets", "seller1", {
        "title": "Custom CNC-machined aluminium brackets (made to order)",
        "category": "industrial-parts", "currency": "SAR", "unit_price": "145.00",
        "quantity": 400, "sale_mode": "negotiable", "process": "negotiation"}),
    ListingSpec("copper", "seller2", {
        "title": "Surplus copper cable, 2 tonnes (auction)", "category": "metals",
        "currency": "USD", "unit_price": "9200.00", "quantity": 2, "sale_mode": "auction"}),
)  # fmt: skip

OFFER_MESSAGE = (
    "We run a contract machining shop in Jubail and want this machine for a new line; "
    "financing is approved and we can collect within two weeks."
)
OFFER_DATA = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}


@dataclass(frozen=True)
class Move:
    """One step of a deal: who moves, which transition, with what, some minutes later."""

    who: str
    transition: str
    terms: dict[str, Any] | None = None
    message: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    after_minutes: int = 40


@dataclass(frozen=True)
class DealSpec:
    key: str
    listing: str
    title: str
    #: Hours before `now` when the first move happens.
    started_hours_ago: float
    moves: tuple[Move, ...]


DEALS: tuple[DealSpec, ...] = (
    DealSpec("rfq-accepted", "bolts", "rfq: accepted, order created", 20, (
        Move("buyer1", "request-quote", {"quantity": 500}, "Need these for Q2 production"),
        Move("seller1", "send-quote", {"unit_price": "48.00", "quantity": 500,
                                       "lead_time_days": 5, "delivery_terms": "DAP Riyadh"},
             "Volume price for 500 boxes"),
        Move("buyer1", "counter", {"unit_price": "46.50", "quantity": 500},
             "Volume discount expected for this quantity", after_minutes=90),
        Move("seller1", "accept", after_minutes=50),
    )),
    DealSpec("rfq-counter", "fittings", "rfq: buyer's counter waits for the seller", 3, (
        Move("buyer2", "request-quote", {"quantity": 1000}, "Quarterly maintenance stock"),
        Move("seller1", "send-quote", {"unit_price": "12.50", "quantity": 1000,
                                       "lead_time_days": 7}),
        Move("buyer2", "counter", {"unit_price": "11.90", "quantity": 1000},
             "A competitor quoted 11.80 for the same spec"),
    )),
    DealSpec("market-won", "laptops", "market: closed-won, escrow and shipment", 26, (
        Move("buyer3", "make-offer", {"unit_price": "395.00", "quantity": 50,
                                      "lead_time_days": 10}, "For our new Dubai office"),
        Move("seller3", "counter", {"unit_price": "410.00", "quantity": 50,
                                    "lead_time_days": 7}, "Best we can do with 7-day delivery"),
        Move("buyer3", "accept", after_minutes=120),
        Move("seller3", "request-close", data={"escrow_waived": False}, after_minutes=60),
        Move("buyer3", "confirm-close", after_minutes=45),
    )),
    DealSpec("market-agreed", "rebar", "market: terms agreed, close not yet requested", 6, (
        Move("buyer1", "make-offer", {"unit_price": "2300.00", "quantity": 40},
             "Site delivery to Riyadh north"),
        Move("seller2", "counter", {"unit_price": "2390.00", "quantity": 40},
             "Includes delivery to site"),
        Move("buyer1", "accept", after_minutes=30),
    )),
    DealSpec("market-offer", "rebar", "market: offer pending", 2, (
        Move("buyer2", "make-offer", {"unit_price": "2350.00", "quantity": 25},
             "Can you deliver within the week?"),
    )),
    DealSpec("market-buy-now", "docks", "market: bought now", 30, (
        Move("buyer1", "buy-now", {"quantity": 20}, "Ordered for the Riyadh office"),
    )),
    DealSpec("offer-countered", "cnc", "offer: pending, with the seller's counter", 4, (
        Move("buyer2", "submit-offer", {"unit_price": "42000.00", "quantity": 1},
             OFFER_MESSAGE, data=OFFER_DATA),
        Move("seller2", "counter", {"unit_price": "45500.00", "quantity": 1},
             "Tooling alone is worth 4,000; 45,500 and it is yours", after_minutes=55),
    )),
    DealSpec("negotiation-reverse", "pallets", "negotiation: seller's offer on a buy request",
             5, (
        Move("seller1", "make-offer", {"unit_price": "36.50", "quantity": 5000,
                                       "lead_time_days": 12}, "ISPM-15 certified, from Jeddah",
             data={"protectedData": {"contact": "logistics@parts.example"}}),
    )),
    DealSpec("negotiation-completed", "brackets", "negotiation: delivered and accepted", 28, (
        Move("buyer3", "request-quote", None, "400 brackets per drawing AB-12",
             data={"protectedData": {"drawing": "AB-12 rev C"}}),
        Move("seller1", "make-offer-from-request", {"unit_price": "140.00", "quantity": 400,
                                                    "lead_time_days": 14}),
        Move("buyer3", "request-payment-to-accept-offer", after_minutes=60),
        Move("buyer3", "confirm-payment", after_minutes=5),
        Move("seller1", "deliver", after_minutes=240),
        Move("buyer3", "accept-deliverable", after_minutes=180),
    )),
)  # fmt: skip


@dataclass
class DemoResult:
    people: list[Person] = field(default_factory=list)
    user_ids: dict[str, str] = field(default_factory=dict)
    listing_ids: dict[str, str] = field(default_factory=dict)
    #: (ref, process, state, title, deal id)
    deals: list[tuple[str, str, str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[], None]


def steps(db: Database, config: Config, now: datetime, result: DemoResult) -> Iterator[Step]:
    """The demo, one step at a time (a progress bar counts them: see `step_count`)."""

    def add_person(p: Person) -> None:
        with session_scope(db) as s:
            user = accounts.create_user(
                s,
                email=p.email,
                name=p.name,
                password=p.password,
                now=now - timedelta(days=p.age_days),
                organization=p.organization,
                roles=p.roles,
                kyc_verified=p.kyc_verified,
                plan=p.plan,
                timezone=p.timezone,
            )
            result.user_ids[p.key] = user.id
        result.people.append(p)

    def add_listing(spec: ListingSpec) -> None:
        with session_scope(db) as s:
            owner = s.get(m.User, result.user_ids[spec.owner])
            assert owner is not None
            row = listings.create_listing(s, owner, spec.fields, now - timedelta(days=3))
            result.listing_ids[spec.key] = row.id

    def run_deal(spec: DealSpec) -> None:
        when = now - timedelta(hours=spec.started_hours_ago)
        deal_id: str | None = None
        version = 0
        for i, move in enumerate(spec.moves):
            if i:
                when += timedelta(minutes=move.after_minutes)
            payload = Payload(
                terms=move.terms, message=move.message, reason=move.reason, data=move.data
            )
            with transaction(
                db, config=config, now=when, ip="127.0.0.1", user_agent="dealroom-demo"
            ) as uow:
                user = uow.session.get(m.User, result.user_ids[move.who])
                assert user is not None
                if deal_id is None:
                    outcome = deals.open_deal(
                        uow,
                        user,
                        listing_id=result.listing_ids[spec.listing],
                        transition=move.transition,
                        payload=payload,
                    )
                else:
                    outcome = deals.fire_transition(
                        uow,
                        user,
                        deal_id=deal_id,
                        name=move.transition,
                        expected_version=version,
                        payload=payload,
                    )
                deal_id, version = outcome.deal.id, outcome.deal.version
                ref, process, state = (
                    outcome.deal.ref,
                    outcome.deal.process_name,
                    outcome.deal.state,
                )
        assert deal_id is not None
        result.deals.append((ref, process, state, spec.title, deal_id))

    for p in PEOPLE:
        yield Step(f"user {p.email}", lambda p=p: add_person(p))  # type: ignore[misc]
    for ls in LISTINGS:
        yield Step(f"listing {ls.fields['title']}", lambda ls=ls: add_listing(ls))  # type: ignore[misc]
    for d in DEALS:
        yield Step(f"deal {d.title}", lambda d=d: run_deal(d))  # type: ignore[misc]


def step_count() -> int:
    return len(PEOPLE) + len(LISTINGS) + len(DEALS)


def load(
    db: Database,
    config: Config,
    now: datetime,
    *,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Create every demo user, listing and deal; `on_step` hears each label when done."""
    result = DemoResult()
    for step in steps(db, config, now, result):
        step.run()
        if on_step is not None:
            on_step(step.label)
    return result
