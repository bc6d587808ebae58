"""How a deal reads to one viewer: the shape of `DealRead` (API.md), shared by the API and
the web deal room."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain import permissions
from dealroom.domain.model import Process
from dealroom.domain.quotes import QuoteVersion
from dealroom.domain.state import DealState
from dealroom.domain.timestamps import iso
from dealroom.services import deals, fees, trust
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork


def viewer_role(deal: m.Deal, user: m.User) -> str:
    """Who `user` is in a deal they may see: buyer, seller, or else staff (operator)."""
    if user.id == deal.buyer_id:
        return "buyer"
    if user.id == deal.seller_id:
        return "seller"
    return "operator"


def party(
    user: m.User | None, profiles: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    if user is None:
        return None
    out: dict[str, Any] = {"id": user.id, "name": user.name, "organization": user.organization}
    if profiles is not None and user.id in profiles:
        out["trust"] = {k: v for k, v in profiles[user.id].items() if k != "user_id"}
    return out


def quote_json(v: QuoteVersion | None) -> dict[str, Any] | None:
    return None if v is None else v.to_json()


def pending_timers(session: Session, deal_id: str) -> list[m.Timer]:
    stmt = (
        select(m.Timer)
        .where(m.Timer.deal_id == deal_id, m.Timer.status == "pending")
        .order_by(m.Timer.due_at)
    )
    return list(session.scalars(stmt))


def deadlines(state: DealState, timers: list[m.Timer]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    moves = [t for t in timers if t.kind == "transition"]
    if moves:
        # Every pending clock, so a party always sees when each one runs out.
        out["timers"] = [
            {"transition": t.name, "rule": t.rule, "event": t.event, "due_at": iso(t.due_at)}
            for t in moves
        ]
        first = moves[0]
        out["respond_by"] = iso(first.due_at)
        out["respond_by_rule"] = first.rule
        out["expires_with"] = first.event
    pending = state.pending
    if pending is not None and pending.terms.valid_until is not None:
        out["quote_valid_until"] = iso(pending.terms.valid_until)
    return out


def next_step(
    process: Process,
    state: DealState,
    handoff: dict[str, Any] | None,
    timers: list[m.Timer],
) -> dict[str, Any] | None:
    """The real next thing to do, who does it, and by when."""
    due = next((iso(t.due_at) for t in timers if t.kind == "transition"), None)
    if state.state in process.final_states or state.state is None:
        if handoff is None:
            return None
        escrow = handoff.get("escrow")
        if escrow and escrow["status"] == "open":
            return {"action": "fund-escrow", "actor": "buyer", "due_at": None}
        shipment = handoff.get("shipment")
        if shipment and shipment["status"] == "awaiting_pickup":
            return {"action": "ship", "actor": "seller", "due_at": None}
        return {"action": "fulfil-order", "actor": "seller", "due_at": None}
    pending = state.pending
    if pending is not None and pending.created_by_role in ("buyer", "seller"):
        other = "seller" if pending.created_by_role == "buyer" else "buyer"
        if permissions.available_transitions(process, state, other):
            return {"action": "respond", "actor": other, "due_at": due}
    if state.last_mover in ("buyer", "seller"):
        # With nothing pending (a request for quote, agreed terms), the ball is in the
        # court of the party who did not move last, if they have a move.
        other = "seller" if state.last_mover == "buyer" else "buyer"
        names = permissions.available_transitions(process, state, other)
        if names:
            return {"action": names[0], "actor": other, "due_at": due}
    for role in ("buyer", "seller", "operator"):
        names = permissions.available_transitions(process, state, role)
        if names:
            return {"action": names[0], "actor": role, "due_at": due}
    return {"action": "wait", "actor": "system", "due_at": due}


#: A deal's order with its escrow and shipment, in one round trip.
_HANDOFF = (
    select(m.Order, m.Escrow, m.Shipment)
    .outerjoin(m.Escrow, m.Escrow.deal_id == m.Order.deal_id)
    .outerjoin(m.Shipment, m.Shipment.deal_id == m.Order.deal_id)
    .where(m.Order.deal_id == bindparam("deal_id"))
)


def handoff_json(session: Session, deal_id: str) -> dict[str, Any] | None:
    row = session.execute(_HANDOFF, {"deal_id": deal_id}).first()
    return None if row is None else handoff_view(*row)


def handoff_view(
    order: m.Order | None, escrow: m.Escrow | None, shipment: m.Shipment | None
) -> dict[str, Any] | None:
    if order is None:
        return None
    return {
        "order_ref": order.ref,
        "total": str(order.total.quantize(_cents(order.currency))),
        "currency": order.currency,
        "quote_version": order.quote_version,
        "fees": order.fees,
        "escrow": None
        if escrow is None
        else {
            "id": escrow.id,
            "status": escrow.status,
            "amount": str(order.total.quantize(_cents(order.currency))),
        },
        "shipment": None if shipment is None else {"id": shipment.id, "status": shipment.status},
    }


def _cents(currency: str) -> Any:
    from decimal import Decimal

    from dealroom.domain.quotes import minor_unit

    return Decimal(1).scaleb(-minor_unit(currency))


def fee_preview(
    fee_config: dict[str, Any], process: Process, deal: m.Deal, state: DealState
) -> list[dict[str, Any]]:
    terms = state.current.terms if state.current else None
    entries = fees.schedule(
        fee_config, process=process.name, category=deal.listing_snapshot.get("category")
    )
    return fees.apply(entries, terms.total if terms else None, deal.listing_snapshot["currency"])


def deal_json(
    session: Session,
    deal: m.Deal,
    state: DealState,
    process: Process,
    viewer_role: str,
    *,
    fee_config: dict[str, Any],
    users: dict[str, m.User] | None = None,
    version: int | None = None,
    now: datetime | None = None,
    timers: list[m.Timer] | None = None,
    trust_max_age: float = 0.0,
    around: deals.Surroundings | None = None,
) -> dict[str, Any]:
    """`timers` replaces the stored pending timers (a dry run passes the would-be ones);
    `around` what was read with the deal (`deals.get_deal_view`) or made by its move; the
    parties' trust profiles may be up to `trust_max_age` seconds old."""
    users = {**(around.users if around else {}), **(users or {})}
    buyer = users.get(deal.buyer_id) or session.get(m.User, deal.buyer_id)
    seller = users.get(deal.seller_id) or session.get(m.User, deal.seller_id)
    profiles = trust.cached_profiles(
        session, [deal.buyer_id, deal.seller_id], now or deal.updated_at, max_age=trust_max_age
    )
    if timers is None:
        timers = pending_timers(session, deal.id) if deal.ref != "(dry run)" else []
    if around is not None:
        handoff = handoff_view(around.order, around.escrow, around.shipment)
        live = around.listing_updated_at
    else:
        handoff = handoff_json(session, deal.id)
        # Often in the session already (a deal being opened loaded its listing).
        listing = session.get(m.Listing, deal.listing_id)
        live = listing.updated_at if listing is not None else None
    available = permissions.available_transitions(process, state, viewer_role)
    changed = live is not None and iso(live) != deal.listing_snapshot.get("updated_at")
    return {
        "id": deal.id,
        "ref": deal.ref,
        "process": {"name": process.name, "version": process.version},
        "state": state.state,
        "version": version if version is not None else deal.version,
        "listing_id": deal.listing_id,
        "listing_snapshot": deal.listing_snapshot,
        "listing_changed": changed,
        "buyer": party(buyer, profiles),
        "seller": party(seller, profiles),
        "viewer_role": viewer_role,
        "current_quote": quote_json(state.current),
        "accepted_quote": quote_json(state.accepted),
        "round": state.round,
        "transition_count": state.transition_count,
        "transitions_left": state.settings.transition_quota - state.transition_count,
        "available_transitions": available,
        "deadlines": deadlines(state, timers),
        "next_step": next_step(process, state, handoff, timers),
        "fees": fee_preview(fee_config, process, deal, state),
        "handoff": handoff,
        "data": dict(state.data),
        "created_at": iso(deal.created_at),
        "updated_at": iso(deal.updated_at),
        "closed_at": iso(deal.closed_at) if deal.closed_at else None,
    }


def result_json(
    uow: UnitOfWork, result: deals.DealResult, *, version: int | None = None
) -> dict[str, Any]:
    """A deal read or just moved (a dry run's would-be deal: `version` the one it would
    reach), as its viewer sees it."""
    timers = None
    if result.outcome is not None:
        # A move replaces every pending timer of the deal with those of its outcome
        # (deals.persist), so its deadlines are known without reading them back; a dry
        # run's are those its move would set, not the stored ones.
        drafts = sorted(result.outcome.timers, key=lambda t: t.due_at)
        timers = [
            m.Timer(deal_id=result.deal.id, kind=t.kind, name=t.name, due_at=t.due_at,
                    state=t.state, rule=t.rule, event=t.event, status="pending")
            for t in drafts
        ]  # fmt: skip
    return deal_json(
        uow.session,
        result.deal,
        result.state,
        result.process,
        result.role,
        fee_config=uow.config.fees,
        version=version,
        now=uow.now,
        timers=timers,
        trust_max_age=uow.config.trust_cache_seconds,
        around=result.around,
    )


@dataclass
class PageItem:
    """One deal of a list page, with what its row shows."""

    deal: m.Deal
    process: Process
    state: DealState
    buyer: m.User | None
    seller: m.User | None
    handoff: dict[str, Any] | None
    next_step: dict[str, Any] | None


def load_page(uow: UnitOfWork, rows: list[m.Deal]) -> list[PageItem]:
    """A page of deals with a fixed number of queries, whatever its length (API list,
    web lists)."""
    if not rows:
        return []
    s = uow.session
    ids = [d.id for d in rows]
    party_ids = {d.buyer_id for d in rows} | {d.seller_id for d in rows}
    users = {u.id: u for u in s.scalars(select(m.User).where(m.User.id.in_(party_ids)))}
    versions: dict[str, list[m.QuoteVersion]] = defaultdict(list)
    for v in s.scalars(
        select(m.QuoteVersion)
        .where(m.QuoteVersion.deal_id.in_(ids))
        .order_by(m.QuoteVersion.deal_id, m.QuoteVersion.number)
    ):
        versions[v.deal_id].append(v)
    timers: dict[str, list[m.Timer]] = defaultdict(list)
    for t in s.scalars(
        select(m.Timer)
        .where(m.Timer.deal_id.in_(ids), m.Timer.status == "pending")
        .order_by(m.Timer.due_at)
    ):
        timers[t.deal_id].append(t)
    orders = {o.deal_id: o for o in s.scalars(select(m.Order).where(m.Order.deal_id.in_(ids)))}
    escrows = {e.deal_id: e for e in s.scalars(select(m.Escrow).where(m.Escrow.deal_id.in_(ids)))}
    shipments = {
        x.deal_id: x for x in s.scalars(select(m.Shipment).where(m.Shipment.deal_id.in_(ids)))
    }
    items = []
    for deal in rows:
        process = get_process(s, deal.process_name, deal.process_version)
        state = deals.engine_state(uow, deal, process, versions=versions[deal.id])
        handoff: dict[str, Any] | None = None
        if deal.id in orders:
            escrow, shipment = escrows.get(deal.id), shipments.get(deal.id)
            handoff = {
                "order_ref": orders[deal.id].ref,
                "escrow": None if escrow is None else {"status": escrow.status},
                "shipment": None if shipment is None else {"status": shipment.status},
            }
        items.append(
            PageItem(
                deal=deal,
                process=process,
                state=state,
                buyer=users.get(deal.buyer_id),
                seller=users.get(deal.seller_id),
                handoff=handoff,
                next_step=next_step(process, state, handoff, timers[deal.id]),
            )
        )
    return items


def deal_list_json(uow: UnitOfWork, user: m.User, rows: list[m.Deal]) -> list[dict[str, Any]]:
    """A page of deals as `DealListItem`s (API.md), with a fixed number of queries whatever
    its length."""
    items = []
    for page in load_page(uow, rows):
        deal, state, handoff = page.deal, page.state, page.handoff
        current = state.current
        items.append(
            {
                "id": deal.id,
                "ref": deal.ref,
                "process": {"name": deal.process_name, "version": deal.process_version},
                "state": deal.state,
                "version": deal.version,
                "listing_id": deal.listing_id,
                "listing_title": deal.listing_snapshot.get("title", ""),
                "buyer": party(page.buyer),
                "seller": party(page.seller),
                "viewer_role": viewer_role(deal, user),
                "current_quote": None
                if current is None
                else {
                    "version": current.number,
                    "created_by_role": current.created_by_role,
                    "unit_price": str(current.terms.unit_price),
                    "quantity": current.terms.quantity,
                    "total_price": str(current.terms.total),
                    "currency": current.terms.currency,
                    "status": current.status,
                },
                "round": state.round,
                "order_ref": handoff["order_ref"] if handoff else None,
                "next_step": page.next_step,
                "created_at": iso(deal.created_at),
                "updated_at": iso(deal.updated_at),
                "closed_at": iso(deal.closed_at) if deal.closed_at else None,
            }
        )
    return items
