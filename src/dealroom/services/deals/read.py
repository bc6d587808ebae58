"""Reading a deal: its rows in the engine's terms, who the caller is in it, the deal with
what its answer shows beside it, and listing deals.

The engine decides on a `DealState`; this module builds one from the deal row, its quote
versions and the layered rule settings. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased

from dealroom.db import models as m
from dealroom.domain.errors import InvalidRequest, NotFound
from dealroom.domain.model import Process
from dealroom.domain.quotes import QuoteVersion, Terms, at_least_cents
from dealroom.domain.settings import Settings, SettingsError
from dealroom.domain.state import Actor, DealState, Listing, Outcome
from dealroom.domain.timestamps import iso
from dealroom.services import cursors
from dealroom.services.accounts import is_staff
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork

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
        "updated_at": iso(listing.updated_at),
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


# The statements of a read, built once: building a SQLAlchemy statement costs about as
# much CPU as executing it (bench/stack.py).
_VERSIONS = (
    select(m.QuoteVersion)
    .where(m.QuoteVersion.deal_id == bindparam("deal_id"))
    .order_by(m.QuoteVersion.number)
)
_DEAL = select(m.Deal).where(m.Deal.id == bindparam("id"))
_DEAL_LOCKED = _DEAL.with_for_update()


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
    if is_staff(user):
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
        session.execute(stmt, {"id": deal_id}).scalar_one_or_none() if is_uuidish(deal_id) else None
    )
    if deal is None:
        raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal_id)
    return deal, role_in(deal, user)


def is_uuidish(value: str) -> bool:
    """Could be an id (ids are at most 36 characters): longer input is not looked up."""
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
    deal, around = load_deal_view(session, deal_id, lock=lock)
    if deal is None:
        raise NotFound("There is no such deal.", rule="VISIBILITY", deal_id=deal_id)
    return deal, role_in(deal, user), around


def load_deal_view(
    session: Session, deal_id: str, *, lock: bool
) -> tuple[m.Deal | None, Surroundings]:
    """The deal and its `Surroundings`, whoever asks (None: no such deal); a move checks
    the caller first (`moves._fire`), then who they are in the deal (`role_in`)."""
    stmt = _DEAL_VIEW_LOCKED if lock else _DEAL_VIEW
    row = session.execute(stmt, {"id": deal_id}).first() if is_uuidish(deal_id) else None
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


def read_deal(uow: UnitOfWork, user: m.User, deal_id: str) -> DealResult:
    """The deal as `user` may see it, with what its answer shows besides."""
    deal, role, around = get_deal_view(uow.session, deal_id, user)
    process = get_process(uow.session, deal.process_name, deal.process_version)
    state = engine_state(uow, deal, process)
    return DealResult(deal, state, process, role, around=around)


# --- many deals ---------------------------------------------------------------------------


def list_deals(
    session: Session,
    user: m.User,
    *,
    state: str | None = None,
    role: str | None = None,
    process: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[m.Deal], str | None]:
    """Deals where `user` is a party (staff: every deal), most recently updated first, and
    the cursor of the next page. `role` (buyer, seller) keeps the user's side only."""
    stmt = select(m.Deal)
    if role == "buyer":
        stmt = stmt.where(m.Deal.buyer_id == user.id)
    elif role == "seller":
        stmt = stmt.where(m.Deal.seller_id == user.id)
    elif not is_staff(user):
        stmt = stmt.where(or_(m.Deal.buyer_id == user.id, m.Deal.seller_id == user.id))
    if state is not None:
        stmt = stmt.where(m.Deal.state == state)
    if process is not None:
        stmt = stmt.where(m.Deal.process_name == process)
    if cursor is not None:
        at, last_id = cursors.time_and_id(cursor)
        stmt = stmt.where(
            or_(m.Deal.updated_at < at, and_(m.Deal.updated_at == at, m.Deal.id < last_id))
        )
    stmt = stmt.order_by(m.Deal.updated_at.desc(), m.Deal.id.desc()).limit(limit + 1)
    return cursors.page(list(session.scalars(stmt)), limit, lambda d: (d.updated_at, d.id))


def count_by_state(session: Session) -> list[tuple[str, str, int]]:
    """How many deals each (process, state) holds."""
    rows = session.execute(
        select(m.Deal.process_name, m.Deal.state, func.count()).group_by(
            m.Deal.process_name, m.Deal.state
        )
    )
    return [(str(p), str(st), int(n)) for p, st, n in rows]


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
