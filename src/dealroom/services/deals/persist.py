"""Writing a move: the deal row (version + 1), the new quote version, status moves of
earlier versions, hash-chained events, the timers that should now be pending, the hand-off
rows (order, escrow, shipment), the notifications and the outbox, all in the caller's
transaction. Services flush, never commit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from dealroom.db import models as m
from dealroom.domain.model import Process
from dealroom.domain.quotes import QuoteVersion
from dealroom.domain.state import Outcome
from dealroom.domain.timestamps import iso
from dealroom.services import feed, fees, notifications
from dealroom.services.audit import chain
from dealroom.services.deals.read import Surroundings
from dealroom.services.outbox import OutboxItem
from dealroom.services.refs import next_ref
from dealroom.services.uow import UnitOfWork

# Core tables for writes that need no ORM bookkeeping.
_QUOTES = cast(Table, m.QuoteVersion.__table__)
_TIMERS = cast(Table, m.Timer.__table__)
_ORDERS = cast(Table, m.Order.__table__)
_ESCROWS = cast(Table, m.Escrow.__table__)
_SHIPMENTS = cast(Table, m.Shipment.__table__)

# The statements of a move, built once: building a SQLAlchemy statement costs about as
# much CPU as executing it (bench/stack.py).
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
        "entered": {k: [iso(a), iso(b)] for k, (a, b) in st.entered.items()},
        "first_transitioned": {k: iso(v) for k, v in st.first_transitioned.items()},
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
        e = chain.append(
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
        uow.outbox.append(OutboxItem("event", deal.id, feed.published(s, e)))
    moved["last_seq"] = deal.last_seq
    moved["head_hash"] = deal.head_hash
    for key in ("last_seq", "head_hash"):
        set_committed_value(deal, key, moved[key])  # append set them; they are written here

    if opening:
        feed.insert_rows(s, [deal])
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
            s.execute(insert(table), [feed.column_values(made[key])])
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
