"""Moving a deal: open one, fire a transition (a user's, or the system's for a timer).

Each loads what it needs, asks the pure engine to decide, and persists the outcome in the
caller's transaction (`persist`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, text

from dealroom.db import models as m
from dealroom.domain import engine, permissions
from dealroom.domain.errors import (
    Duplicate,
    InvalidRequest,
    NotAuthorized,
    NotFound,
    RateLimited,
    StaleDeal,
)
from dealroom.domain.model import Process
from dealroom.domain.settings import Settings
from dealroom.domain.state import SYSTEM, DealState, Payload
from dealroom.services.accounts import Caller, is_staff
from dealroom.services.deals.persist import persist
from dealroom.services.deals.read import (
    DealResult,
    Surroundings,
    actor_for,
    engine_listing,
    engine_state,
    is_uuidish,
    load_deal_view,
    role_in,
    settings_for,
    snapshot_of,
)
from dealroom.services.processes import get_process
from dealroom.services.refs import next_ref
from dealroom.services.uow import UnitOfWork

# --- opening a deal -----------------------------------------------------------------------


def open_deal(
    uow: UnitOfWork,
    user: m.User,
    *,
    listing_id: str,
    transition: str,
    process_name: str | None = None,
    payload: Payload,
    buyer_id: str | None = None,
    dry_run: bool = False,
) -> DealResult:
    s = uow.session
    listing = s.get(m.Listing, listing_id) if is_uuidish(listing_id) else None
    if listing is None or listing.status != "active":
        raise NotFound("There is no such active listing.", rule="LISTING", field="listing_id")
    process = get_process(s, process_name or listing.process)
    if transition not in process.transitions or not process.transitions[transition].initial:
        starts = ", ".join(t.name for t in process.initial_transitions)
        raise InvalidRequest(
            f"A {process.name} deal starts with {starts}; '{transition}' is not one of them.",
            field="transition",
            rule="STATE",
        )
    t = process.transitions[transition]
    if not {"buyer", "seller"} & t.actors:
        # Opened by staff for the parties (an auction win): the caller is the operator.
        if not is_staff(user):
            raise NotAuthorized(f"'{transition}' is recorded by an operator.", rule="ACTOR")
        role = "operator"
    else:
        # On a sell listing the caller buys; on a buy listing (reverse flow) the caller sells.
        role = "buyer" if listing.kind == "sell" else "seller"
    if role == "operator":
        if not buyer_id:
            raise InvalidRequest("Say who won: data.buyer_id.", field="data.buyer_id")
        counterpart = s.get(m.User, buyer_id)
        if counterpart is None:
            raise InvalidRequest("data.buyer_id is not a user.", field="data.buyer_id")
        buyer, seller = counterpart.id, listing.owner_id
    elif role == "buyer":
        buyer, seller = user.id, listing.owner_id
    else:
        buyer, seller = listing.owner_id, user.id
    if buyer == seller:
        raise NotAuthorized("No one can negotiate with themselves.", rule="SELF-DEAL")

    snapshot = snapshot_of(listing)
    settings = settings_for(
        uow, process, category=listing.category, seller_id=seller,
        listing_rules=listing.rules or None, deal_rules=None,
    )  # fmt: skip
    if settings.offer_rules and role == "buyer":
        _offer_limits(
            uow, buyer_id=buyer, listing_id=listing.id, settings=settings, process=process
        )

    state = DealState(
        process=process.name,
        listing=engine_listing(snapshot),
        settings=settings,
        buyer_id=buyer,
        seller_id=seller,
    )
    outcome = engine.fire(process, state, transition, actor_for(user, role), payload, now=uow.now)
    deal = m.Deal(
        id=m.new_id(),
        ref="(dry run)" if dry_run else next_ref(s, "DEAL", uow.now),
        process_name=process.name,
        process_version=process.version,
        state=outcome.to_state,
        version=0,
        listing_id=listing.id,
        listing_snapshot=snapshot,
        buyer_id=buyer,
        seller_id=seller,
        initiated_by=role,
        data={"listing_rules": listing.rules} if listing.rules else {},
        rules={},
        last_seq=0,
        created_at=uow.now,
        updated_at=uow.now,
    )
    if dry_run:
        deal.version = 1
        return DealResult(deal, outcome.deal, process, role, outcome, dry_run=True)
    made = persist(uow, deal, process, outcome, actor_id=user.id)  # inserts the deal
    around = Surroundings({user.id: user}, listing.updated_at, made.get("order"),
                          made.get("escrow"), made.get("shipment"))  # fmt: skip
    return DealResult(deal, outcome.deal, process, role, outcome, around=around)


def _offer_limits(
    uow: UnitOfWork, *, buyer_id: str, listing_id: str, settings: Settings, process: Process
) -> None:
    """Offer reference anti-spam: offers per day, one open offer per listing (OFR-009/010)."""
    s = uow.session
    if s.get_bind().dialect.name == "postgresql":
        # Two simultaneous offers by one buyer queue here, so the counts below hold.
        s.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"offers:{buyer_id}"},
        )
    open_states = [st for st in process.states if st not in process.final_states]
    if settings.one_open_offer_per_listing:
        existing = s.execute(
            select(m.Deal.id)
            .where(
                m.Deal.buyer_id == buyer_id,
                m.Deal.listing_id == listing_id,
                m.Deal.process_name == process.name,
                m.Deal.state.in_(open_states),
            )
            .limit(1)
        ).scalar_one_or_none()
        if existing is not None:
            raise Duplicate(
                "You already have an open offer on this listing; answer or withdraw it first.",
                rule="OFR-010",
                deal_id=existing,
            )
    since = uow.now - timedelta(days=1)
    recent = list(
        s.scalars(
            select(m.Deal.created_at)
            .where(m.Deal.buyer_id == buyer_id, m.Deal.initiated_by == "buyer",
                   m.Deal.process_name == process.name, m.Deal.created_at > since)
            .order_by(m.Deal.created_at)
        )
    )  # fmt: skip
    if len(recent) >= settings.offers_per_day:
        retry = int((recent[0] + timedelta(days=1) - uow.now).total_seconds()) + 1
        raise RateLimited(
            f"At most {settings.offers_per_day} offers a day; try again in "
            f"{retry // 3600} h {retry % 3600 // 60} min.",
            rule="OFR-009",
            retry_after=retry,
        )


# --- firing a transition ------------------------------------------------------------------


def fire_transition(
    uow: UnitOfWork,
    user: m.User,
    *,
    deal_id: str,
    name: str,
    expected_version: int,
    payload: Payload,
    dry_run: bool = False,
) -> DealResult:
    return _fire(
        uow, user.id, lambda _row: user, deal_id=deal_id, name=name,
        expected_version=expected_version, payload=payload, dry_run=dry_run,
    )  # fmt: skip


def fire_transition_as(
    uow: UnitOfWork,
    caller: Caller,
    *,
    deal_id: str,
    name: str,
    expected_version: int,
    payload: Payload,
    dry_run: bool = False,
) -> DealResult:
    """`fire_transition` for a caller known by a verified token: their row comes with the
    deal's read when they are a party, and is vouched for before anything else is decided
    (`accounts.Caller.user`), a missing deal included."""
    return _fire(
        uow, caller.id, lambda row: caller.user(uow.session, row), deal_id=deal_id, name=name,
        expected_version=expected_version, payload=payload, dry_run=dry_run,
    )  # fmt: skip


def _fire(
    uow: UnitOfWork,
    user_id: str,
    vouch: Callable[[m.User | None], m.User],
    *,
    deal_id: str,
    name: str,
    expected_version: int,
    payload: Payload,
    dry_run: bool,
) -> DealResult:
    deal, around = load_deal_view(uow.session, deal_id, lock=not dry_run)
    # The caller's row comes with the deal when they are a party; `vouch` checks it (or
    # reads it, for staff) before anything else is decided, a missing deal included.
    user = vouch(around.users.get(user_id) if deal is not None else None)
    if deal is None:
        raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal_id)
    role = role_in(deal, user)
    if deal.version != expected_version:
        raise StaleDeal(
            f"The deal is at version {deal.version}, not {expected_version}: someone moved "
            "first. Reload it and decide again.",
            current_version=deal.version,
            deal_id=deal.id,
        )
    process = get_process(uow.session, deal.process_name, deal.process_version)
    state = engine_state(uow, deal, process)
    if role == "operator" or (
        role in ("buyer", "seller") and _acts_as_operator(user, process, state, name, role)
    ):
        role = "operator"
    outcome = engine.fire(process, state, name, actor_for(user, role), payload, now=uow.now)
    if dry_run:
        return DealResult(deal, outcome.deal, process, role, outcome, dry_run=True, around=around)
    made = persist(uow, deal, process, outcome, actor_id=user.id, around=around)
    around.order = made.get("order", around.order)
    around.escrow = made.get("escrow", around.escrow)
    around.shipment = made.get("shipment", around.shipment)
    return DealResult(deal, outcome.deal, process, role, outcome, around=around)


def _acts_as_operator(
    user: m.User, process: Process, state: DealState, name: str, role: str
) -> bool:
    """A party who is also staff fires operator transitions as the operator."""
    t = process.transitions.get(name)
    if t is None or not is_staff(user):
        return False
    roles = permissions.permitted_roles(process, state, t)
    return role not in roles and "operator" in roles


def fire_system(uow: UnitOfWork, *, deal: m.Deal, name: str, timer_rule: str | None) -> DealResult:
    """A timer's transition, fired by the system through the same path as a user's.
    The caller (the worker) holds the deal's row lock."""
    process = get_process(uow.session, deal.process_name, deal.process_version)
    state = engine_state(uow, deal, process)
    outcome = engine.fire(process, state, name, SYSTEM, Payload(timer_rule=timer_rule), now=uow.now)
    persist(uow, deal, process, outcome, actor_id=None)
    return DealResult(deal, outcome.deal, process, "system", outcome)
