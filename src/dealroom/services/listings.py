"""Listing use cases: create, edit, find.

A listing is public. Deals freeze a snapshot of it when they open, so an edit here changes
what new deals see and never what open deals agreed on: nothing in this module touches a
deal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.errors import FieldProblem, InvalidRequest, NotAuthorized, NotFound
from dealroom.domain.settings import Settings, SettingsError
from dealroom.services import cursors
from dealroom.services.processes import get_process

#: Who may edit a listing they do not own (operators run deals, not the catalogue).
EDITS_ANY_LISTING = frozenset({"admin"})
#: Every sale mode runs the `market` process unless the listing names another (API.md).
DEFAULT_PROCESS = {"negotiable": "market", "buy_now": "market", "auction": "market"}
EDITABLE = frozenset(
    {
        "title", "description", "category", "currency", "unit_price", "quantity",
        "min_order_qty", "max_order_qty", "sale_mode", "process", "attributes", "rules",
        "status",
    }
)  # fmt: skip


def _check_process_and_rules(
    session: Session, process_name: str, rules: dict[str, Any]
) -> list[FieldProblem]:
    """The process must exist; the rule overrides must apply on top of its settings."""
    try:
        process = get_process(session, process_name)
    except NotFound:
        return [FieldProblem("process", "PROCESS", f"there is no process named '{process_name}'")]
    try:
        Settings.from_mapping(rules, base=process.settings)
    except SettingsError as exc:
        return [FieldProblem("rules", "SETTINGS", p) for p in exc.problems]
    return []


def _refuse(problems: list[FieldProblem]) -> None:
    if problems:
        fields = ", ".join(sorted({p.field for p in problems}))
        raise InvalidRequest(
            f"Fix these fields and resend: {fields}.", problems=problems, rule="LISTING"
        )


def create_listing(
    session: Session, owner: m.User, data: dict[str, Any], now: datetime
) -> m.Listing:
    """A new active listing owned by `owner`. `data` holds ListingCreate's fields."""
    process = data.get("process") or DEFAULT_PROCESS[data.get("sale_mode") or "negotiable"]
    rules = dict(data.get("rules") or {})
    _refuse(_check_process_and_rules(session, process, rules))
    listing = m.Listing(
        owner_id=owner.id,
        kind=data.get("kind") or "sell",
        title=data["title"],
        description=data.get("description"),
        category=data.get("category"),
        currency=data["currency"],
        unit_price=Decimal(data["unit_price"]),
        quantity=data.get("quantity") or 1,
        min_order_qty=data.get("min_order_qty"),
        max_order_qty=data.get("max_order_qty"),
        sale_mode=data.get("sale_mode") or "negotiable",
        process=process,
        attributes=dict(data.get("attributes") or {}),
        rules=rules,
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(listing)
    session.flush()
    return listing


def get_listing(session: Session, listing_id: str) -> m.Listing:
    listing = session.get(m.Listing, listing_id) if 0 < len(listing_id) <= 36 else None
    if listing is None:
        raise NotFound("There is no such listing.", rule="LISTING", listing_id=listing_id)
    return listing


def update_listing(
    session: Session, user: m.User, listing_id: str, changes: dict[str, Any], now: datetime
) -> m.Listing:
    """The owner (or an admin) edits; `changes` holds only the fields sent.

    Open deals keep the snapshot they opened with; closing or pausing stops new deals.
    """
    listing = get_listing(session, listing_id)
    if listing.owner_id != user.id and not EDITS_ANY_LISTING & set(user.roles or []):
        raise NotAuthorized("Only the listing's owner may edit it.", rule="OWNER")
    unknown = set(changes) - EDITABLE
    if unknown:
        raise InvalidRequest(f"Not editable: {', '.join(sorted(unknown))}.", rule="LISTING")

    merged = {
        "quantity": changes.get("quantity", listing.quantity),
        "min_order_qty": changes.get("min_order_qty", listing.min_order_qty),
        "max_order_qty": changes.get("max_order_qty", listing.max_order_qty),
    }
    problems: list[FieldProblem] = []
    low, high, qty = merged["min_order_qty"], merged["max_order_qty"], merged["quantity"]
    if low is not None and high is not None and low > high:
        problems.append(FieldProblem("min_order_qty", "LISTING", "may not exceed max_order_qty"))
    if low is not None and qty is not None and low > qty:
        problems.append(FieldProblem("min_order_qty", "LISTING", "may not exceed quantity"))
    if "process" in changes or "rules" in changes:
        rules: dict[str, Any] = changes.get("rules") or listing.rules or {}
        problems += _check_process_and_rules(
            session, changes.get("process") or listing.process, dict(rules)
        )
    _refuse(problems)

    for key, value in changes.items():
        if key == "unit_price":
            value = Decimal(value)
        elif key in ("attributes", "rules"):
            value = dict(value)
        setattr(listing, key, value)
    listing.updated_at = now
    session.flush()
    return listing


# --- finding listings -----------------------------------------------------------------


@dataclass(frozen=True)
class ListingQuery:
    q: str | None = None
    category: str | None = None
    kind: str | None = None
    sale_mode: str | None = None
    owner_id: str | None = None
    status: str | None = "active"
    limit: int = 20
    cursor: str | None = None


def search_listings(session: Session, query: ListingQuery) -> tuple[list[m.Listing], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    L = m.Listing  # noqa: N806 (reads like the table it stands for)
    stmt = select(L)
    if query.q:
        needle = query.q.strip().lower()
        stmt = stmt.where(
            or_(
                func.lower(L.title).contains(needle, autoescape=True),
                func.lower(func.coalesce(L.description, "")).contains(needle, autoescape=True),
            )
        )
    for column, value in (
        (L.category, query.category),
        (L.kind, query.kind),
        (L.sale_mode, query.sale_mode),
        (L.owner_id, query.owner_id),
        (L.status, query.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.cursor:
        when, last_id = cursors.time_and_id(query.cursor)
        stmt = stmt.where(or_(L.created_at < when, and_(L.created_at == when, L.id < last_id)))
    rows = list(
        session.scalars(stmt.order_by(L.created_at.desc(), L.id.desc()).limit(query.limit + 1))
    )
    return cursors.page(rows, query.limit, lambda r: (r.created_at, r.id))
