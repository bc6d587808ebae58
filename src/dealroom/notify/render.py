"""What an email says: Jinja2 templates (text and HTML) and the context they are given.

Text templates are plain and HTML templates autoescaped, both under `templates/`, one
pair per notification template (`_generic` for the templates an imported process names
that dealroom does not ship). The helpers turn rows into what templates show: a deal
(`deal_view`), its listing, an amount with its currency (`money`), a party, a quote
version in the reader's timezone. `notification_context` gathers what the email of one
bell item tells; digest.py gathers a digest's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.domain.quotes import at_least_cents

GENERIC = "_generic"


@dataclass(frozen=True)
class Rendered:
    to: str
    subject: str
    text: str
    html: str
    deal_ref: str | None = None


@cache
def environment() -> Environment:
    """Text templates are plain; HTML templates are autoescaped."""
    return Environment(
        loader=PackageLoader("dealroom.notify", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def template_names() -> frozenset[str]:
    names = set(environment().list_templates(extensions=["txt"]))
    html = set(environment().list_templates(extensions=["html"]))
    return frozenset(n[:-4] for n in names if n[:-4] + ".html" in html)


def template_for(name: str) -> str:
    """The template a process's notification names, or the generic one (the templates
    of imported processes that dealroom does not ship)."""
    return name if name in template_names() and not name.startswith("_") else GENERIC


def render(template: str, context: dict[str, Any], *, to: str) -> Rendered:
    env = environment()
    text_t = env.get_template(f"{template}.txt")
    subject = "".join(text_t.blocks["subject"](text_t.new_context(context)))
    return Rendered(
        to=to,
        subject=" ".join(subject.split())[:400],
        text=text_t.render(context),
        html=env.get_template(f"{template}.html").render(context),
        deal_ref=(context.get("deal") or {}).get("ref"),
    )


def money(amount: Decimal | str | None, currency: str) -> str | None:
    if amount is None:
        return None
    return f"{at_least_cents(Decimal(str(amount))):,} {currency}"


def local_time(ts: datetime | str | None, tz: ZoneInfo) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    t = ts.astimezone(tz)
    return f"{t.day} {t:%b %Y, %H:%M} ({tz.key})"


def party(user: m.User | None) -> dict[str, Any]:
    if user is None:
        return {"id": None, "name": "(unknown)", "organization": None, "display": "(unknown)"}
    display = f"{user.name} ({user.organization})" if user.organization else user.name
    return {"id": user.id, "name": user.name, "organization": user.organization,
            "display": display}  # fmt: skip


def quote_view(q: m.QuoteVersion | None, tz: ZoneInfo) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "number": q.number,
        "by": q.created_by_role,
        "price": money(q.unit_price, q.currency),
        "quantity": f"{q.quantity:,}",
        "total": money(q.total_price, q.currency),
        "currency": q.currency,
        "lead_time_days": q.lead_time_days,
        "valid_until": local_time(q.valid_until, tz),
        "change": None if q.price_change_pct is None else f"{q.price_change_pct:+}%",
        "message": q.message,
        "status": q.status,
    }


def deal_url(config: Config, deal_id: str) -> str:
    return f"{config.base_url.rstrip('/')}/deals/{deal_id}"


def deal_view(config: Config, deal: m.Deal) -> dict[str, Any]:
    return {"id": deal.id, "ref": deal.ref, "state": deal.state.replace("-", " "),
            "process": deal.process_name, "url": deal_url(config, deal.id)}  # fmt: skip


def listing_view(deal: m.Deal) -> dict[str, Any]:
    snap = deal.listing_snapshot or {}
    currency = snap.get("currency", "")
    return {"title": snap.get("title", "(untitled)"), "currency": currency,
            "unit_price": money(snap.get("unit_price"), currency)}  # fmt: skip


def _move_event(
    session: Session, deal_id: str, seq: int | None, transition: str | None
) -> m.Event | None:
    """The event of the move a notification tells of: the latest at or before `seq` that
    fired `transition` (a reminder takes the latest event)."""
    stmt = select(m.Event).where(m.Event.deal_id == deal_id)
    if seq is not None:
        stmt = stmt.where(m.Event.seq <= seq)
    recent = list(session.scalars(stmt.order_by(m.Event.seq.desc()).limit(8)))
    for e in recent:
        if transition is None or (e.payload or {}).get("transition") == transition:
            return e
    return recent[0] if recent else None


def quote_at(session: Session, deal_id: str, event: m.Event | None) -> m.QuoteVersion | None:
    """The quote version an event names, else the one the latest earlier event named
    (a move that made no version, such as a request or a reminder)."""
    stmt = select(m.QuoteVersion).where(m.QuoteVersion.deal_id == deal_id)
    if event is None:
        return session.scalar(stmt.order_by(m.QuoteVersion.number.desc()).limit(1))
    number = (event.payload or {}).get("version")
    if not isinstance(number, int):
        earlier = session.scalars(
            select(m.Event.payload)
            .where(m.Event.deal_id == deal_id, m.Event.seq < event.seq)
            .order_by(m.Event.seq.desc())
            .limit(50)
        )
        number = next(
            (p["version"] for p in earlier if isinstance((p or {}).get("version"), int)), None
        )
    if number is None:
        return None
    return session.scalar(stmt.where(m.QuoteVersion.number == number))


def _who(event: m.Event | None, recipient: m.User, parties: dict[str, Any]) -> str:
    if event is None:
        return "dealroom"
    if event.actor_id is not None and event.actor_id == recipient.id:
        return "You"
    if event.actor_type in ("buyer", "seller"):
        return str(parties[event.actor_type]["name"])
    return "The marketplace" if event.actor_type == "operator" else "dealroom"


def notification_context(
    session: Session, config: Config, row: m.QueuedEmail, user: m.User, tz: ZoneInfo
) -> tuple[str, dict[str, Any]] | None:
    n = session.get(m.Notification, row.notification_id) if row.notification_id else None
    deal = session.get(m.Deal, n.deal_id) if n is not None and n.deal_id else None
    if n is None or deal is None:
        return None
    buyer, seller = (
        party(session.get(m.User, deal.buyer_id)),
        party(session.get(m.User, deal.seller_id)),
    )
    parties = {"buyer": buyer, "seller": seller}
    role = "buyer" if user.id == deal.buyer_id else "seller"
    transition = (n.payload or {}).get("transition")
    event = _move_event(session, deal.id, row.event_seq, transition)
    quote = quote_at(session, deal.id, event)
    previous = None
    if quote is not None and quote.number > 1:
        previous = session.scalar(
            select(m.QuoteVersion).where(
                m.QuoteVersion.deal_id == deal.id, m.QuoteVersion.number == quote.number - 1
            )
        )
    order = session.scalar(select(m.Order).where(m.Order.deal_id == deal.id))
    if order is not None and order.created_at > n.created_at:
        order = None
    ev_payload = (event.payload or {}) if event is not None else {}
    context = {
        "notification": n.name,
        "headline": n.name.replace("-", " ").capitalize(),
        "transition": transition,
        "recipient": {**party(user), "role": role},
        "other": seller if role == "buyer" else buyer,
        "buyer": buyer,
        "seller": seller,
        "who": _who(event, user, parties),
        "actor": event.actor_type if event is not None else "system",
        "deal": deal_view(config, deal),
        "listing": listing_view(deal),
        "quote": quote_view(quote, tz),
        "previous": quote_view(previous, tz),
        "order": None
        if order is None
        else {"ref": order.ref, "total": money(order.total, order.currency)},
        "message": ev_payload.get("message") or ev_payload.get("body"),
        "reason": ev_payload.get("reason"),
        "request": ev_payload.get("request")
        if isinstance(ev_payload.get("request"), dict)
        else None,
        "reminder_due": local_time((n.payload or {}).get("due_at"), tz),
        "base_url": config.base_url.rstrip("/"),
    }
    return template_for(n.template), context
