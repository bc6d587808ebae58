"""Reading what the list pages show: a page of deals with their next steps, in a fixed
number of queries whatever the page's length."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from dealroom.db import models as m
from dealroom.domain.model import Process
from dealroom.services import deals, views
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork
from dealroom.web.formatting import as_time

#: Deals read for one list page at most; the page says when there are more.
PAGE_LIMIT = 100


@dataclass
class DealRow:
    deal: m.Deal
    process: Process
    role: str  # the viewer's: buyer, seller or operator
    buyer: m.User | None
    seller: m.User | None
    current: dict[str, Any] | None
    accepted: bool
    next_step: dict[str, Any] | None
    order_ref: str | None

    @property
    def waiting_for_viewer(self) -> bool:
        return bool(self.next_step and self.next_step.get("actor") == self.role)

    @property
    def due_at(self) -> datetime | None:
        return as_time((self.next_step or {}).get("due_at"))

    @property
    def counterpart(self) -> m.User | None:
        return self.seller if self.role == "buyer" else self.buyer

    @property
    def is_final(self) -> bool:
        return self.deal.state in self.process.final_states


def _role(deal: m.Deal, user: m.User) -> str:
    if deal.buyer_id == user.id:
        return "buyer"
    if deal.seller_id == user.id:
        return "seller"
    return "operator"


def deal_rows(uow: UnitOfWork, user: m.User, stmt: Select[Any]) -> list[DealRow]:
    s = uow.session
    rows: list[m.Deal] = list(s.scalars(stmt))
    if not rows:
        return []
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
    closed = [d.id for d in rows if d.closed_at is not None]
    orders: dict[str, m.Order] = {}
    escrows: dict[str, m.Escrow] = {}
    shipments: dict[str, m.Shipment] = {}
    if closed:
        orders = {
            o.deal_id: o for o in s.scalars(select(m.Order).where(m.Order.deal_id.in_(closed)))
        }
        escrows = {
            e.deal_id: e for e in s.scalars(select(m.Escrow).where(m.Escrow.deal_id.in_(closed)))
        }
        shipments = {x.deal_id: x for x in s.scalars(select(m.Shipment).where(m.Shipment.deal_id.in_(closed)))}  # fmt: skip
    out = []
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
        current = state.current
        out.append(
            DealRow(
                deal=deal,
                process=process,
                role=_role(deal, user),
                buyer=users.get(deal.buyer_id),
                seller=users.get(deal.seller_id),
                current=None if current is None else current.to_json(),
                accepted=state.accepted is not None,
                next_step=views.next_step(process, state, handoff, timers[deal.id]),
                order_ref=handoff["order_ref"] if handoff else None,
            )
        )
    return out


def waiting_first(rows: list[DealRow]) -> list[DealRow]:
    """What waits for the viewer first, soonest due first; then the rest, latest first."""
    far = datetime.max.replace(tzinfo=None)

    def key(r: DealRow) -> tuple[int, datetime, float]:
        group = 0 if r.waiting_for_viewer else 1 if not r.is_final else 2
        due = r.due_at.replace(tzinfo=None) if r.due_at and group == 0 else far
        return (group, due, -r.deal.updated_at.timestamp())

    return sorted(rows, key=key)


def offer_count(uow: UnitOfWork, listing_id: str) -> int:
    return deals.offer_counts(uow.session, [listing_id]).get(listing_id, 0)
