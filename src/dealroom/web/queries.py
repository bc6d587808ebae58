"""Reading what the list pages show: a page of deals with their next steps, in a fixed
number of queries whatever the page's length."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select

from dealroom.db import models as m
from dealroom.domain.model import Process
from dealroom.services import deals, views
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
    rows: list[m.Deal] = list(uow.session.scalars(stmt))
    out = []
    for page in views.load_page(uow, rows):
        deal, state, handoff, process = page.deal, page.state, page.handoff, page.process
        current = state.current
        out.append(
            DealRow(
                deal=deal,
                process=process,
                role=_role(deal, user),
                buyer=page.buyer,
                seller=page.seller,
                current=None if current is None else current.to_json(),
                accepted=state.accepted is not None,
                next_step=page.next_step,
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
