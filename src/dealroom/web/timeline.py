"""A deal's audit trail as the timeline of the rfq reference (section 4.2): when, what,
who, and the facts each event recorded, in the viewer's timezone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dealroom.db import models as m
from dealroom.web.formatting import Formatter

TYPE_WIDTH = 17


@dataclass
class Entry:
    seq: int
    stamp: str
    iso: str
    type: str
    actor: str
    actor_type: str
    from_state: str | None
    to_state: str | None
    details: list[tuple[str, str]]
    hash: str
    prev_hash: str
    ip: str | None
    user_agent: str | None


def actor_label(e: m.Event, deal: m.Deal, users: dict[str, m.User]) -> str:
    """`Buyer: Acme Corp`, `Seller: Parts Inc`, `Operator: Omar Operator`, `System`."""
    if e.actor_type == "system" or e.actor_id is None:
        return "System"
    user = users.get(e.actor_id)
    name = (user.organization or user.name) if user else "unknown user"
    if e.actor_type == "operator" and user is not None:
        name = user.name
    return f"{e.actor_type.capitalize()}: {name}"


def _money(fmt: Formatter, amount: Any, currency: str) -> str:
    return fmt.money(amount, currency)


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds}s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def details(e: m.Event, currency: str, fmt: Formatter) -> list[tuple[str, str]]:
    """The facts of one event, in the order the reference lists them."""
    p: dict[str, Any] = e.payload if isinstance(e.payload, dict) else {}
    terms: dict[str, Any] = p.get("terms") if isinstance(p.get("terms"), dict) else {}  # type: ignore[assignment]
    cur = str(terms.get("currency") or p.get("currency") or currency)
    out: list[tuple[str, str]] = []
    if "version" in p:
        out.append(("version", str(p["version"])))
    if terms.get("unit_price") is not None:
        out.append(("price", _money(fmt, terms["unit_price"], cur)))
    if terms.get("quantity") is not None:
        out.append(("quantity", fmt.number(terms["quantity"])))
    elif isinstance(p.get("request"), dict) and p["request"].get("quantity") is not None:
        out.append(("quantity", fmt.number(p["request"]["quantity"])))
    if terms.get("lead_time_days") is not None:
        out.append(("leadTime", fmt.days(terms["lead_time_days"])))
    if terms.get("discount_percent"):
        out.append(("discount", fmt.percent(terms["discount_percent"])))
    if terms.get("delivery_terms"):
        out.append(("delivery", str(terms["delivery_terms"])))
    if terms.get("valid_until"):
        out.append(("validUntil", fmt.date(terms["valid_until"])))
    if p.get("price_change_pct") is not None:
        out.append(("priceChange", fmt.percent(p["price_change_pct"], signed=True)))
    if p.get("lead_time_change_days") is not None:
        out.append(("leadTimeChange", fmt.days(p["lead_time_change_days"], signed=True)))
    if p.get("order_ref"):
        out.append(("orderId", str(p["order_ref"])))
    if p.get("total") is not None:
        out.append(("total", _money(fmt, p["total"], cur)))
    for fee in p.get("fees") or []:
        if isinstance(fee, dict) and fee.get("amount") is not None:
            label = f"fee {fee.get('name', '')} ({fee.get('payer', '')})"
            out.append((label, _money(fmt, fee["amount"], str(fee.get("currency") or cur))))
    if p.get("message"):
        out.append(("message", f"“{p['message']}”"))
    if p.get("body"):
        out.append(("message", f"“{p['body']}”"))
    if p.get("reason"):
        out.append(("reason", f"“{p['reason']}”"))
    if isinstance(p.get("response_seconds"), int):
        out.append(("answered in", _duration(int(p["response_seconds"]))))
    if p.get("timer_rule"):
        out.append(("rule", str(p["timer_rule"])))
    if "escrow_waived" in p:
        out.append(("escrow", "waived" if p["escrow_waived"] else "held"))
    return out


def entries(
    events: list[m.Event], deal: m.Deal, users: dict[str, m.User], fmt: Formatter
) -> list[Entry]:
    currency = str(deal.listing_snapshot.get("currency", ""))
    return [
        Entry(
            seq=e.seq,
            stamp=fmt.stamp(e.created_at),
            iso=fmt.iso(e.created_at),
            type=e.type,
            actor=actor_label(e, deal, users),
            actor_type=e.actor_type,
            from_state=e.from_state,
            to_state=e.to_state,
            details=details(e, currency, fmt),
            hash=e.hash,
            prev_hash=e.prev_hash,
            ip=e.ip,
            user_agent=e.user_agent,
        )
        for e in events
    ]


def plain_text(deal: m.Deal, items: list[Entry]) -> str:
    """The timeline as text, laid out like the reference's example."""
    rule = "─" * 81
    pad = " " * 20
    lines = [f"Timeline for {deal.ref}:", rule]
    for i, entry in enumerate(items):
        if i:
            lines.append("")
        lines.append(f"{entry.stamp} | {entry.type.ljust(TYPE_WIDTH)}| {entry.actor}")
        facts = ", ".join(f"{k}: {v}" for k, v in entry.details)
        if facts:
            lines.append(f"{pad}| {facts}")
    lines.append(rule)
    return "\n".join(lines)
