"""The engine on its own: the rfq reference example, RFQ-2026-0042, move by move.

Acme Corp asks Parts Inc for 1000 units; Parts Inc quotes 50.00 SAR with 7 days lead time;
Acme counters at 45.00; Parts Inc counters at 47.00 with 5 days; Acme accepts and the
order is created. Every move goes through `engine.fire` at the time the reference's audit
timeline gives it; nothing is stored. `dealroom demo` prints it until the server demo
takes the command over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dealroom.domain.engine import fire
from dealroom.domain.quotes import VersionDiff, diff
from dealroom.domain.state import Actor, DealState, Listing, Outcome, Payload
from dealroom.processes import builtin

REF = "RFQ-2026-0042"
ORDER_REF = "ORD-2026-0089"
BUYER_ORG = "Acme Corp"
SELLER_ORG = "Parts Inc"

BUYER = Actor(role="buyer", user_id="acme-buyer", kyc_verified=True)
SELLER = Actor(role="seller", user_id="parts-seller", kyc_verified=True)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: (time, transition, actor, payload): the moves of the reference timeline (section 4.2).
MOVES: tuple[tuple[datetime, str, Actor, Payload], ...] = (
    (
        _at("2026-02-01T09:00:00"),
        "request-quote",
        BUYER,
        Payload(terms={"quantity": 1000}, message="Need for Q2 production"),
    ),
    (
        _at("2026-02-01T14:15:00"),
        "send-quote",
        SELLER,
        Payload(
            terms={
                "unit_price": "50.00",
                "quantity": 1000,
                "lead_time_days": 7,
                "valid_until": "2026-02-08T00:00:00Z",
            }
        ),
    ),
    (
        _at("2026-02-02T09:00:00"),
        "counter",
        BUYER,
        Payload(
            terms={"unit_price": "45.00"}, message="Volume discount expected for this quantity"
        ),
    ),
    (
        _at("2026-02-02T14:00:00"),
        "counter",
        SELLER,
        Payload(
            terms={"unit_price": "47.00", "lead_time_days": 5},
            message="Best price with expedited delivery",
        ),
    ),
    (_at("2026-02-02T15:00:00"), "accept", BUYER, Payload(reason="Terms acceptable")),
)


@dataclass(frozen=True)
class Walk:
    outcomes: tuple[tuple[datetime, Outcome], ...]
    deal: DealState
    diff: VersionDiff
    order_total: Decimal
    currency: str


def walk() -> Walk:
    """Fire the reference example's moves; pure, so tests call it too."""
    process = builtin("rfq")
    deal = DealState(
        process=process.name,
        listing=Listing(
            currency="SAR",
            unit_price=Decimal("50.00"),
            quantity=1000,
            title="Industrial bearings, 6204-2RS",
        ),
        settings=process.settings,
        buyer_id=BUYER.user_id,
        seller_id=SELLER.user_id,
    )
    outcomes = []
    for now, name, actor, payload in MOVES:
        outcome = fire(process, deal, name, actor, payload, now=now)
        outcomes.append((now, outcome))
        deal = outcome.deal
    order = next(e for _, o in outcomes for e in o.effects if e.name == "create-order")
    return Walk(
        outcomes=tuple(outcomes),
        deal=deal,
        diff=diff(deal.versions[0], deal.versions[-1]),
        order_total=Decimal(str(order.params["total"])),
        currency=str(order.params["currency"]),
    )


def _who(actor_type: str) -> str:
    return {"buyer": f"Buyer: {BUYER_ORG}", "seller": f"Seller: {SELLER_ORG}"}.get(
        actor_type, actor_type.capitalize()
    )


def _details(payload: dict[str, object], event_type: str) -> str:
    parts: list[str] = []
    request = payload.get("request")
    if isinstance(request, dict):
        parts.append(f"quantity: {request.get('quantity')}")
    terms = payload.get("terms")
    if isinstance(terms, dict):
        parts.append(f"version: {payload.get('version')}, price: {terms['unit_price']}")
        if terms.get("lead_time_days") is not None:
            parts.append(f"leadTime: {terms['lead_time_days']}")
        if event_type == "QUOTE_SENT" and terms.get("valid_until"):
            parts.append(f"validUntil: {str(terms['valid_until'])[:10]}")
    elif "version" in payload:
        parts.append(f"version: {payload['version']}")
    if payload.get("price_change_pct") is not None and event_type != "COUNTER_SUBMITTED":
        pct = Decimal(str(payload["price_change_pct"])).normalize()
        lead = payload.get("lead_time_change_days")
        parts.append(f"priceChange: {pct:f}%" + (f", leadTimeChange: {lead} days" if lead else ""))
    if event_type == "ORDER_CREATED":
        parts.append(f"orderId: {ORDER_REF}, total: {payload.get('total')}")
    for key in ("message", "reason"):
        if payload.get(key):
            parts.append(f'{key}: "{payload[key]}"')
    return ", ".join(parts)


def run(console: Console | None = None) -> Walk:
    console = console or Console(highlight=False)
    result = walk()

    timeline = Table(title=f"Timeline for {REF}", title_justify="left")
    for col in ("time", "event", "actor", "details"):
        timeline.add_column(col, no_wrap=col in ("time", "event"))
    for now, outcome in result.outcomes:
        for event in outcome.events:
            timeline.add_row(
                f"{now:%Y-%m-%d %H:%M:%S}",
                event.type,
                _who(event.actor_type),
                escape(_details(dict(event.payload), event.type)),
            )
            if event.from_state != event.to_state and event.to_state:
                timeline.add_row(
                    "", "", "", f"[dim]{event.from_state or '∅'} → {event.to_state}[/]"
                )
    console.print(timeline)

    versions = Table(title="Quote versions", title_justify="left")
    for col in (
        "v",
        "by",
        "unit price",
        "qty",
        "total",
        "lead",
        "valid until",
        "reason",
        "Δ price",
        "status",
    ):
        versions.add_column(
            col,
            justify="right"
            if col in ("v", "unit price", "qty", "total", "lead", "Δ price")
            else "left",
        )
    for v in result.deal.versions:
        t = v.terms
        versions.add_row(
            str(v.number),
            v.created_by_role,
            f"{t.unit_price:,.2f}",
            str(t.quantity),
            f"{t.total:,.2f} {t.currency}",
            f"{t.lead_time_days} d" if t.lead_time_days is not None else "",
            f"{t.valid_until:%Y-%m-%d %H:%M}" if t.valid_until else "",
            v.change_reason,
            f"{v.price_change_pct:+}%" if v.price_change_pct is not None else "",
            v.status,
        )
    console.print(versions)

    d = result.diff
    console.print(f"[bold]v{d.from_version} → v{d.to_version}:[/] {escape(d.summary)}")
    console.print(
        f"[bold]Order {ORDER_REF}:[/] total {result.order_total:,.2f} {result.currency} "
        f"(version {result.deal.accepted.number if result.deal.accepted else '?'}, "
        f"deal {result.deal.state}, {result.deal.transition_count} moves)"
    )
    return result
