"""Deal use cases: open a deal, fire a transition, post a message.

One function per thing a user does. Each loads what it needs, asks the pure engine to
decide, and persists the outcome in the caller's transaction: the deal row (version + 1),
the new quote version, status moves of earlier versions, hash-chained events, the timers
that should now be pending, the handoff (order, escrow, shipment) and the outbox. Services
flush, never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session, aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

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
from dealroom.domain.quotes import QuoteVersion, Terms, at_least_cents
from dealroom.domain.settings import Settings, SettingsError
from dealroom.domain.state import SYSTEM, Actor, DealState, Listing, Outcome, Payload
from dealroom.services import audit, fees, notifications
from dealroom.services.accounts import Caller
from dealroom.services.outbox import OutboxItem
from dealroom.services.processes import get_process
from dealroom.services.refs import next_ref
from dealroom.services.uow import UnitOfWork

STAFF_ROLES = frozenset({"operator", "admin"})


# --- reading a deal into the engine's terms -----------------------------------------------


def snapshot_of(listing: m.Listing) -> dict[str, Any]:
    """The listing as frozen when a deal opens; later edits never touch it."""
    return {
        "id": listing.id,
        "title": listing.title,
        "description": listing.description,
        "category": listing.category,
        "kind": listing.kind,
        "currency": listing.currency,
        "unit_price": str(at_least_cents(listing.unit_price)),
        "quantity": listing.quantity,
        "min_order_qty": listing.min_order_qty,
        "max_order_qty": listing.max_order_qty,
        "sale_mode": listing.sale_mode,
        "attributes": dict(listing.attributes or {}),
        "owner_id": listing.owner_id,
        "updated_at": audit.iso(listing.updated_at),
    }


def engine_listing(snapshot: dict[str, Any]) -> Listing:
    return Listing(
        currency=snapshot["currency"],
        unit_price=Decimal(snapshot["unit_price"]),
        quantity=int(snapshot.get("quantity") or 1),
        min_order_qty=snapshot.get("min_order_qty"),
        max_order_qty=snapshot.get("max_order_qty"),
        sale_mode=snapshot.get("sale_mode", "negotiable"),
        category=snapshot.get("category"),
        title=snapshot.get("title", ""),
    )


def settings_for(
    uow: UnitOfWork,
    process: Process,
    *,
    category: str | None,
    seller_id: str,
    listing_rules: dict[str, Any] | None,
    deal_rules: dict[str, Any] | None,
) -> Settings:
    """Process defaults < category < seller < listing < deal: the most specific wins."""
    overrides = uow.config.rule_overrides
    try:
        return Settings.layered(
            process.settings,
            overrides.get("category", {}).get(category or "", None),
            overrides.get("seller", {}).get(seller_id, None),
            listing_rules,
            deal_rules,
        )
    except SettingsError as exc:
        raise InvalidRequest(f"Rule settings refused: {exc}", rule="SETTINGS") from exc


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def version_of(row: m.QuoteVersion) -> QuoteVersion:
    return QuoteVersion(
        number=row.number,
        terms=Terms(
            unit_price=at_least_cents(row.unit_price),
            quantity=row.quantity,
            currency=row.currency,
            lead_time_days=row.lead_time_days,
            delivery_terms=row.delivery_terms,
            valid_until=row.valid_until,
            discount_percent=None
            if row.discount_percent is None
            else at_least_cents(row.discount_percent),
            notes=row.notes,
        ),
        created_by_role=row.created_by_role,
        created_at=row.created_at,
        change_reason=row.change_reason,
        status=row.status,
        message=row.message,
        price_change_pct=row.price_change_pct,
        lead_time_change_days=row.lead_time_change_days,
        is_proposal=row.is_proposal,
    )


# Core tables for writes that need no ORM bookkeeping.
_QUOTES = cast(Table, m.QuoteVersion.__table__)
_TIMERS = cast(Table, m.Timer.__table__)
_ORDERS = cast(Table, m.Order.__table__)
_ESCROWS = cast(Table, m.Escrow.__table__)
_SHIPMENTS = cast(Table, m.Shipment.__table__)

# The statements of a move, built once: building a SQLAlchemy statement costs about as
# much CPU as executing it (bench/stack.py).
_VERSIONS = (
    select(m.QuoteVersion)
    .where(m.QuoteVersion.deal_id == bindparam("deal_id"))
    .order_by(m.QuoteVersion.number)
)
_DEAL = select(m.Deal).where(m.Deal.id == bindparam("id"))
_DEAL_LOCKED = _DEAL.with_for_update()
#: Core UPDATEs (on the tables, not the ORM classes): nothing loaded in the session needs
#: them evaluated against it.
_QUOTE_STATUS = (
    update(_QUOTES)
    .where(m.QuoteVersion.deal_id == bindparam("of_deal"),
           m.QuoteVersion.number == bindparam("of_number"), m.QuoteVersion.status == "pending")
    .values(status=bindparam("new_status"))
)  # fmt: skip
_DEALS = cast(Table, m.Deal.__table__)
#: The deal row after a move; the SET clause is the columns passed (`_write_move`).
_MOVE_DEAL = update(_DEALS).where(_DEALS.c.id == bindparam("of_id"))
_CANCEL_TIMERS = (
    update(_TIMERS)
    .where(m.Timer.deal_id == bindparam("of_deal"), m.Timer.status == "pending")
    .values(status="cancelled", done_at=bindparam("at"))
)


def load_versions(session: Session, deal_id: str) -> list[m.QuoteVersion]:
    return list(session.scalars(_VERSIONS, {"deal_id": deal_id}))


def engine_state(
    uow: UnitOfWork,
    deal: m.Deal,
    process: Process,
    *,
    versions: list[m.QuoteVersion] | None = None,
) -> DealState:
    """The deal as the engine sees it; `versions` lets a list pass rows it loaded in bulk."""
    if versions is None:
        versions = load_versions(uow.session, deal.id)
    listing_rules = deal.data.get("listing_rules") if deal.data else None
    settings = settings_for(
        uow,
        process,
        category=deal.listing_snapshot.get("category"),
        seller_id=deal.seller_id,
        listing_rules=listing_rules,
        deal_rules=deal.rules,
    )
    return DealState(
        process=process.name,
        listing=engine_listing(deal.listing_snapshot),
        settings=settings,
        buyer_id=deal.buyer_id,
        seller_id=deal.seller_id,
        state=deal.state if deal.transition_count else None,
        versions=tuple(version_of(v) for v in versions),
        proposals=deal.proposals,
        transition_count=deal.transition_count,
        initiated_at=deal.initiated_at,
        last_move_at=deal.last_move_at,
        last_mover=deal.last_mover,
        last_transition=deal.last_transition,
        entered={k: (_ts(v[0]), _ts(v[1])) for k, v in (deal.entered or {}).items()},  # type: ignore[misc]
        first_transitioned={k: _ts(v) for k, v in (deal.first_transitioned or {}).items()},  # type: ignore[misc]
        data={k: v for k, v in (deal.data or {}).items() if k != "listing_rules"},
    )


# --- who the caller is in a deal ----------------------------------------------------------


def role_in(deal: m.Deal, user: m.User) -> str:
    """buyer, seller or operator; a user who may not see the deal gets NEG-011 (404)."""
    if user.id == deal.buyer_id:
        return "buyer"
    if user.id == deal.seller_id:
        return "seller"
    if STAFF_ROLES & set(user.roles or []):
        return "operator"
    raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal.id)


def actor_for(user: m.User, role: str) -> Actor:
    return Actor(
        role=role,
        user_id=user.id,
        kyc_verified=user.kyc_verified,
        plan=user.plan,
        created_at=user.created_at,
        blocked=user.blocked and role in ("buyer", "seller"),
    )


def get_deal(
    session: Session, deal_id: str, user: m.User, *, lock: bool = False
) -> tuple[m.Deal, str]:
    stmt = _DEAL_LOCKED if lock else _DEAL
    deal = (
        session.execute(stmt, {"id": deal_id}).scalar_one_or_none()
        if _is_uuidish(deal_id)
        else None
    )
    if deal is None:
        raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal_id)
    return deal, role_in(deal, user)


def _is_uuidish(value: str) -> bool:
    return 0 < len(value) <= 36


@dataclass
class Surroundings:
    """What a deal's answer shows beside the deal row: its parties, when its listing last
    changed, and its hand-off rows (read with the deal in one round trip, `get_deal_view`)."""

    users: dict[str, m.User]
    listing_updated_at: datetime | None
    order: m.Order | None = None
    escrow: m.Escrow | None = None
    shipment: m.Shipment | None = None
    #: The parties' email preference, for those who have set one (`notify.email.enqueue`);
    #: None: not read.
    email_modes: dict[str, str] | None = None


_Buyer = aliased(m.User, name="buyer")
_Seller = aliased(m.User, name="seller")
_BuyerPrefs = aliased(m.UserPreference, name="buyer_prefs")
_SellerPrefs = aliased(m.UserPreference, name="seller_prefs")
_DEAL_VIEW = (
    select(
        m.Deal,
        _Buyer,
        _Seller,
        m.Listing.updated_at,
        m.Order,
        m.Escrow,
        m.Shipment,
        _BuyerPrefs.email,
        _SellerPrefs.email,
    )
    .outerjoin(_Buyer, _Buyer.id == m.Deal.buyer_id)
    .outerjoin(_Seller, _Seller.id == m.Deal.seller_id)
    .outerjoin(_BuyerPrefs, _BuyerPrefs.user_id == m.Deal.buyer_id)
    .outerjoin(_SellerPrefs, _SellerPrefs.user_id == m.Deal.seller_id)
    .outerjoin(m.Listing, m.Listing.id == m.Deal.listing_id)
    .outerjoin(m.Order, m.Order.deal_id == m.Deal.id)
    .outerjoin(m.Escrow, m.Escrow.deal_id == m.Deal.id)
    .outerjoin(m.Shipment, m.Shipment.deal_id == m.Deal.id)
    .where(m.Deal.id == bindparam("id"))
)
_DEAL_VIEW_LOCKED = _DEAL_VIEW.with_for_update(of=m.Deal.__table__)


def get_deal_view(
    session: Session, deal_id: str, user: m.User, *, lock: bool = False
) -> tuple[m.Deal, str, Surroundings]:
    """`get_deal`, with what its answer shows besides (`Surroundings`) in the same query."""
    deal, around = _deal_view(session, deal_id, lock=lock)
    if deal is None:
        raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal_id)
    return deal, role_in(deal, user), around


def _deal_view(session: Session, deal_id: str, *, lock: bool) -> tuple[m.Deal | None, Surroundings]:
    stmt = _DEAL_VIEW_LOCKED if lock else _DEAL_VIEW
    row = session.execute(stmt, {"id": deal_id}).first() if _is_uuidish(deal_id) else None
    if row is None:
        return None, Surroundings({}, None)
    deal, buyer, seller, listing_updated_at, order, escrow, shipment, b_email, s_email = row
    users = {u.id: u for u in (buyer, seller) if u is not None}
    modes = {uid: mode for uid, mode in ((deal.buyer_id, b_email), (deal.seller_id, s_email))
             if mode is not None}  # fmt: skip
    return deal, Surroundings(users, listing_updated_at, order, escrow, shipment, modes)


@dataclass
class DealResult:
    deal: m.Deal
    state: DealState
    process: Process
    role: str
    outcome: Outcome | None = None
    dry_run: bool = False
    #: Read with the deal (`get_deal_view`) and brought up to date by the move; None: the
    #: answer reads them itself.
    around: Surroundings | None = None


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
    listing = s.get(m.Listing, listing_id) if _is_uuidish(listing_id) else None
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
        if not STAFF_ROLES & set(user.roles or []):
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
    deal, around = _deal_view(uow.session, deal_id, lock=not dry_run)
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
    if t is None or not STAFF_ROLES & set(user.roles or []):
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


def persist(
    uow: UnitOfWork,
    deal: m.Deal,
    process: Process,
    outcome: Outcome,
    *,
    actor_id: str | None,
    around: Surroundings | None = None,
) -> dict[str, Any]:
    """Write the move; answer the hand-off rows it made (order, escrow, shipment).
    `around`: what was read with the deal (`get_deal_view`), so it is not read again."""
    uow.session.flush()  # what the caller changed first (the worker marks its timer fired)
    # The move itself is written with Core statements (`_write_move`); no autoflush may run
    # in between, or it would write the deal object's new values a second time.
    with uow.session.no_autoflush:
        made = _write_move(uow, deal, process, outcome, actor_id=actor_id, around=around)
    uow.session.flush()
    return made


def _write_move(
    uow: UnitOfWork,
    deal: m.Deal,
    process: Process,
    outcome: Outcome,
    *,
    actor_id: str | None,
    around: Surroundings | None,
) -> dict[str, Any]:
    """Everything is worked out first (the deal's new columns, the quote version, the
    hand-off rows, the chained events); then the deal row is written, then the rows that
    point at it, all as Core statements: a move needs none of the unit of work's
    bookkeeping, and each statement costs CPU."""
    s = uow.session
    now = uow.now
    st = outcome.deal
    opening = deal.version == 0
    listing_rules = (deal.data or {}).get("listing_rules")
    moved: dict[str, Any] = {
        "state": outcome.to_state,
        "version": deal.version + 1,
        "proposals": st.proposals,
        "transition_count": st.transition_count,
        "initiated_at": st.initiated_at,
        "last_move_at": st.last_move_at,
        "last_mover": st.last_mover,
        "last_transition": st.last_transition,
        "entered": {k: [audit.iso(a), audit.iso(b)] for k, (a, b) in st.entered.items()},
        "first_transitioned": {k: audit.iso(v) for k, v in st.first_transitioned.items()},
        "data": {**st.data, **({"listing_rules": listing_rules} if listing_rules else {})},
        "updated_at": now,
    }
    if outcome.to_state in process.final_states:
        moved["closed_at"] = now
    for key, value in moved.items():
        set_committed_value(deal, key, value)

    made = _handoff(uow, deal, process, outcome)
    for i, draft in enumerate(outcome.events):
        payload = dict(draft.payload)
        if draft.type == "ORDER_CREATED" and "order" in made:
            payload["order_ref"] = made["order"].ref
            payload["fees"] = made["order"].fees
        ev_actor = None if draft.actor_type == "system" and i > 0 else actor_id
        e = audit.append(
            s,
            deal,
            type=draft.type,
            actor_id=ev_actor,
            actor_type=draft.actor_type,
            from_state=draft.from_state
            if draft.from_state is not None or i == 0
            else outcome.to_state,
            to_state=draft.to_state if draft.to_state is not None else outcome.to_state,
            payload=payload,
            now=now,
            ip=uow.ip if i == 0 else None,
            user_agent=uow.user_agent if i == 0 else None,
        )
        uow.outbox.append(OutboxItem("event", deal.id, audit.published(s, e)))
    moved["last_seq"] = deal.last_seq
    moved["head_hash"] = deal.head_hash
    for key in ("last_seq", "head_hash"):
        set_committed_value(deal, key, moved[key])  # append set them; they are written here

    if opening:
        audit.insert_rows(s, [deal])
        make_transient_to_detached(deal)
        s.add(deal)  # persistent from here, as if loaded: later changes flush as usual
    else:
        s.execute(_MOVE_DEAL, {**moved, "of_id": deal.id})
    if outcome.status_changes:
        s.execute(_QUOTE_STATUS, [{"of_deal": deal.id, "of_number": number, "new_status": status}
                                  for number, status in outcome.status_changes])  # fmt: skip
    if outcome.quote is not None:
        s.execute(insert(_QUOTES), [_quote_row(deal, outcome.quote)])
    for key, table in (("order", _ORDERS), ("escrow", _ESCROWS), ("shipment", _SHIPMENTS)):
        if key in made:  # in this order: escrow and shipment point at the order
            s.execute(insert(table), [audit.column_values(made[key])])
    if not opening:  # a deal being opened has no timers yet
        s.execute(_CANCEL_TIMERS, {"of_deal": deal.id, "at": now})
    if outcome.timers:
        s.execute(insert(_TIMERS), [
            {"deal_id": deal.id, "kind": t.kind, "name": t.name, "due_at": t.due_at,
             "state": t.state, "rule": t.rule, "event": t.event, "status": "pending",
             "created_at": now}
            for t in outcome.timers
        ])  # fmt: skip
    modes = around.email_modes if around is not None else None
    for n in outcome.notifications:
        notifications.record(
            uow, deal, n.name, n.template, n.to, {"transition": outcome.transition},
            email_modes=modes,
        )  # fmt: skip
    return made


def _quote_row(deal: m.Deal, v: QuoteVersion) -> dict[str, Any]:
    return {
        "id": m.new_id(),
        "deal_id": deal.id,
        "number": v.number,
        "created_by_id": _party_id(deal, v.created_by_role),
        "created_by_role": v.created_by_role,
        "unit_price": v.terms.unit_price,
        "quantity": v.terms.quantity,
        "total_price": v.terms.total,
        "currency": v.terms.currency,
        "discount_percent": v.terms.discount_percent,
        "lead_time_days": v.terms.lead_time_days,
        "delivery_terms": v.terms.delivery_terms,
        "valid_until": v.terms.valid_until,
        "notes": v.terms.notes,
        "message": v.message,
        "change_reason": v.change_reason,
        "price_change_pct": v.price_change_pct,
        "lead_time_change_days": v.lead_time_change_days,
        "is_proposal": v.is_proposal,
        "status": v.status,
        "created_at": v.created_at,
    }


def _party_id(deal: m.Deal, role: str) -> str | None:
    return {"buyer": deal.buyer_id, "seller": deal.seller_id}.get(role)


def _handoff(uow: UnitOfWork, deal: m.Deal, process: Process, outcome: Outcome) -> dict[str, Any]:
    """Order, escrow and shipment for the engine's handoff effects, as new objects that
    `_write_move` inserts (they are never added to the session)."""
    made: dict[str, Any] = {}
    for effect in outcome.effects:
        if effect.name == "create-order":
            total = Decimal(effect.params["total"])
            currency = effect.params["currency"]
            entries = fees.schedule(uow.config.fees, process=process.name,
                                    category=deal.listing_snapshot.get("category"))  # fmt: skip
            made["order"] = m.Order(
                id=m.new_id(), deal_id=deal.id, ref=next_ref(uow.session, "ORD", uow.now),
                quote_version=effect.params["version"], total=total, currency=currency,
                fees=fees.apply(entries, total, currency), status="open", created_at=uow.now,
            )  # fmt: skip
        elif effect.name == "open-escrow":
            order = made["order"]
            made["escrow"] = m.Escrow(
                id=m.new_id(), deal_id=deal.id, order_id=order.id,
                status="waived" if effect.params.get("waived") else "open",
                amount=order.total, currency=order.currency, created_at=uow.now,
            )  # fmt: skip
        elif effect.name == "create-shipment":
            order = made["order"]
            made["shipment"] = m.Shipment(id=m.new_id(), deal_id=deal.id, order_id=order.id,
                                          status="awaiting_pickup", created_at=uow.now)  # fmt: skip
    return made


# --- messages -----------------------------------------------------------------------------

MAX_MESSAGE = 5000


def post_message(uow: UnitOfWork, user: m.User, *, deal_id: str, body: str) -> m.Message:
    """A message never changes state nor counts as a transition, but it is on the record."""
    text_ = body.strip()
    if not text_:
        raise InvalidRequest("A message needs some text.", field="body", rule="MESSAGE")
    if len(text_) > MAX_MESSAGE:
        raise InvalidRequest(
            f"A message is at most {MAX_MESSAGE} characters.", field="body", rule="MESSAGE"
        )
    deal, role = get_deal(uow.session, deal_id, user, lock=True)
    msg = m.Message(deal_id=deal.id, author_id=user.id, body=text_, created_at=uow.now)
    uow.session.add(msg)
    uow.session.flush()
    e = audit.append(
        uow.session, deal, type="MESSAGE_POSTED", actor_id=user.id, actor_type=role,
        from_state=deal.state, to_state=deal.state,
        payload={"message_id": msg.id, "body": text_},
        now=uow.now, ip=uow.ip, user_agent=uow.user_agent,
    )  # fmt: skip
    deal.updated_at = uow.now
    uow.outbox.append(OutboxItem("event", deal.id, audit.published(uow.session, e)))
    # Offer reference: "Offer Message: notify about new communications" — the other party
    # (both, when an operator writes).
    others = [r for r in ("buyer", "seller") if r != role]
    notifications.record(
        uow, deal, "message-posted", "message-posted", others, {"message_id": msg.id}
    )
    return msg


def offer_counts(session: Session, listing_ids: list[str]) -> dict[str, int]:
    """Open deals per listing (a listing shows its offer count)."""
    if not listing_ids:
        return {}
    rows = session.execute(
        select(m.Deal.listing_id, func.count())
        .where(m.Deal.listing_id.in_(listing_ids), m.Deal.closed_at.is_(None))
        .group_by(m.Deal.listing_id)
    )
    return {lid: int(n) for lid, n in rows}
