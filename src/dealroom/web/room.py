"""What the deal room shows, read once per page: the frozen listing, the offer history with
the change each version made, messages, both trust profiles, fees, the task card and the
forms of the moves the viewer may make now. `routes_room` renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from dealroom.db import models as m
from dealroom.domain import permissions
from dealroom.domain.model import Process
from dealroom.domain.quotes import QuoteVersion, diff
from dealroom.domain.state import DealState
from dealroom.services import deals, trust, views
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork
from dealroom.web import forms
from dealroom.web.formatting import Formatter, as_time

#: The messages a room shows (the newest ones); the audit trail keeps every one.
MESSAGES_SHOWN = 300
#: Moves a room lists at most (the audit trail has them all).
EVENTS_SHOWN = 1000

STEP_TEXT = {
    "respond": "Respond to the offer: accept, counter or reject",
    "fund-escrow": "Fund escrow",
    "ship": "Ship the order (outbound)",
    "fulfil-order": "Fulfil the order",
    "wait": "Nothing to do now",
}
ESCROW_TEXT = {
    "open": "Open — waiting for the buyer's payment",
    "waived": "Waived — paid directly",
    "funded": "Funded",
    "released": "Released to the seller",
    "refunded": "Refunded",
}
SHIPMENT_TEXT = {
    "awaiting_pickup": "Outbound workspace ready — awaiting pickup",
    "in_transit": "In transit",
    "delivered": "Delivered",
}


@dataclass
class HistoryEntry:
    number: int
    role: str
    who: m.User | None
    version: QuoteVersion
    summary: str
    changes: dict[str, Any]

    @property
    def terms(self) -> dict[str, Any]:
        return self.version.to_json()


@dataclass
class Decision:
    """A move that made no new version (accept, close, withdraw) or what the system did."""

    seq: int
    type: str
    text: str
    actor_type: str
    created_at: Any
    note: str | None


@dataclass
class Room:
    deal: m.Deal
    process: Process
    state: DealState
    role: str
    view: dict[str, Any]
    buyer: m.User | None
    seller: m.User | None
    history: list[HistoryEntry]
    decisions: list[Decision]
    messages: list[tuple[m.Message, m.User | None, str]]
    messages_hidden: int
    trust: dict[str, dict[str, Any]]
    forms: list[forms.ActionForm]
    live_listing: m.Listing | None
    diff: dict[str, Any] | None = None
    task: dict[str, Any] = field(default_factory=dict)

    @property
    def currency(self) -> str:
        return str(self.deal.listing_snapshot.get("currency", ""))

    @property
    def state_title(self) -> str:
        return self.process.state_titles.get(self.deal.state, "")

    @property
    def is_final(self) -> bool:
        return self.deal.state in self.process.final_states

    def party(self, role: str) -> m.User | None:
        return {"buyer": self.buyer, "seller": self.seller}.get(role)

    @property
    def activity(self) -> list[tuple[str, Any]]:
        """Versions and decisions in the order they happened."""
        items: list[tuple[Any, int, int, str, Any]] = [
            (h.version.created_at, 0, h.number, "version", h) for h in self.history
        ]
        items += [(d.created_at, 1, d.seq, "decision", d) for d in self.decisions]
        items.sort(key=lambda x: (x[0], x[1], x[2]))
        return [(kind, item) for _, _, _, kind, item in items]


def trust_profiles(uow: UnitOfWork, ids: list[str]) -> dict[str, dict[str, Any]]:
    return trust.cached_profiles(uow.session, ids, uow.now, max_age=uow.config.trust_cache_seconds)


def _history(
    versions: list[QuoteVersion], rows: list[m.QuoteVersion], users: dict[str, m.User]
) -> list[HistoryEntry]:
    out = []
    for i, (v, row) in enumerate(zip(versions, rows, strict=True)):
        change = diff(versions[i - 1], v) if i else None
        out.append(
            HistoryEntry(
                number=v.number,
                role=v.created_by_role,
                who=users.get(row.created_by_id or ""),
                version=v,
                summary=change.summary if change else "Opening terms",
                changes={c.field: c for c in change.changes} if change else {},
            )
        )
    return out


DECISION_TEXT = {
    "QUOTE_ACCEPTED": "{who} accepted v{version}",
    "QUOTE_REJECTED": "{who} rejected v{version}",
    "CLOSE_REQUESTED": "{who} requested close",
    "DEAL_CLOSED": "{who} confirmed close",
    "ORDER_CREATED": "Order {order_ref} created",
    "ESCROW_OPENED": "Escrow opened",
    "ESCROW_WAIVED": "Escrow waived",
    "SHIPMENT_CREATED": "Outbound shipment workspace created",
    "NEGOTIATION_ABANDONED": "{who} withdrew",
    "REQUEST_DECLINED": "{who} declined the request",
    "RFQ_CREATED": "{who} requested a quote",
    "QUOTE_EXPIRED": "The terms on the table expired",
    "NEGOTIATION_TIMEOUT": "The deal went quiet and ended",
    "RFQ_EXPIRED": "The request expired",
}


def _decisions(events: list[m.Event], names: dict[str, str]) -> list[Decision]:
    out = []
    for e in events:
        payload: dict[str, Any] = e.payload if isinstance(e.payload, dict) else {}
        if e.type == "MESSAGE_POSTED" or "terms" in payload:
            continue  # messages have their own list; versions are in the history
        who = names.get(e.actor_type, "The system" if e.actor_type == "system" else "Someone")
        template = DECISION_TEXT.get(e.type)
        if template is None:
            verb = e.type.replace("_", " ").lower()
            text = f"{who}: {verb}" if e.actor_type != "system" else verb.capitalize()
        else:
            text = template.format(who=who, version=payload.get("version", "?"),
                                   order_ref=payload.get("order_ref", ""))  # fmt: skip
        note = payload.get("reason") or payload.get("message")
        out.append(Decision(e.seq, e.type, text, e.actor_type, e.created_at,
                            str(note) if note else None))  # fmt: skip
    return out


def pick_diff(versions: list[QuoteVersion], a: str | None, b: str | None) -> dict[str, Any] | None:
    """Two versions side by side: those asked for, else the last two."""
    if len(versions) < 2:
        return None
    by_number = {v.number: v for v in versions}

    def number(raw: str | None, default: int) -> int:
        return int(raw) if raw and raw.isdigit() and int(raw) in by_number else default

    left = number(a, versions[-2].number)
    right = number(b, versions[-1].number)
    old, new = by_number[left], by_number[right]
    change = diff(old, new)
    return {
        "left": old,
        "right": new,
        "summary": change.summary,
        "changed": {c.field: c for c in change.changes},
        "numbers": [v.number for v in versions],
    }


def task_card(room: Room) -> dict[str, Any]:
    """The real next step: who does what by when, and what the deal has become."""
    step = room.view.get("next_step") or {}
    action = step.get("action")
    actor = step.get("actor")
    if action in STEP_TEXT:
        text = STEP_TEXT[action]
    elif action:
        text = forms.title_of(room.process, action)
    else:
        text = "This deal is over" if room.is_final else "Nothing to do now"
    handoff = room.view.get("handoff")
    mine = actor == room.role and room.role in ("buyer", "seller", "operator")
    if handoff:
        escrow = (handoff.get("escrow") or {}).get("status")
        shipment = (handoff.get("shipment") or {}).get("status")
        handoff = {
            **handoff,
            "escrow_text": ESCROW_TEXT.get(escrow or "", forms.title_of(room.process, escrow or ""))
            if escrow
            else None,
            "shipment_text": SHIPMENT_TEXT.get(shipment or "", (shipment or "").replace("_", " "))
            if shipment
            else None,
        }
    who = room.party(actor) if actor in ("buyer", "seller") else None
    return {
        "action": action,
        "actor": actor,
        "text": text,
        "mine": mine,
        "who": who,
        "due_at": as_time(step.get("due_at")),
        "deadlines": room.view.get("deadlines") or {},
        "handoff": handoff,
    }


def forms_for(
    deal: m.Deal,
    process: Process,
    state: DealState,
    role: str,
    names: list[str],
    fmt: Formatter,
) -> list[forms.ActionForm]:
    """A form per move the viewer may make, prefilled with the terms on the table."""
    on_table = state.pending or state.current
    snapshot = deal.listing_snapshot
    if on_table is not None:
        terms: dict[str, Any] = on_table.terms.to_json()
    else:  # a first quote: start from the listing and what the buyer asked for
        request = state.data.get("request")
        asked = request if isinstance(request, dict) else {}
        terms = {
            "unit_price": snapshot.get("unit_price"),
            "quantity": asked.get("quantity") or snapshot.get("quantity"),
            "lead_time_days": asked.get("lead_time_days"),
        }
    currency = str(snapshot["currency"])
    return [
        forms.action_form(process, name, role=role, settings=state.settings,
                          currency=currency, terms=terms, fmt=fmt)
        for name in names
    ]  # fmt: skip


def load_forms(
    uow: UnitOfWork, user: m.User, deal_id: str, fmt: Formatter
) -> tuple[m.Deal, Process, list[forms.ActionForm]]:
    """Only what a posted move needs: the deal and the viewer's forms."""
    deal, role = deals.get_deal(uow.session, deal_id, user)
    process = get_process(uow.session, deal.process_name, deal.process_version)
    state = deals.engine_state(uow, deal, process)
    names = permissions.available_transitions(process, state, role)
    return deal, process, forms_for(deal, process, state, role, names, fmt)


def load_room(
    uow: UnitOfWork,
    user: m.User,
    deal_id: str,
    fmt: Formatter,
    *,
    diff_from: str | None = None,
    diff_to: str | None = None,
) -> Room:
    s = uow.session
    deal, role, around = deals.get_deal_view(s, deal_id, user)
    process = get_process(s, deal.process_name, deal.process_version)
    rows = deals.load_versions(s, deal.id)
    state = deals.engine_state(uow, deal, process, versions=rows)
    view = views.deal_json(s, deal, state, process, role, fee_config=uow.config.fees, now=uow.now,
                           trust_max_age=uow.config.trust_cache_seconds, around=around)  # fmt: skip
    msgs = list(
        s.scalars(
            select(m.Message)
            .where(m.Message.deal_id == deal.id)
            .order_by(m.Message.created_at.desc(), m.Message.id.desc())
            .limit(MESSAGES_SHOWN + 1)
        )
    )
    hidden = max(0, len(msgs) - MESSAGES_SHOWN)
    msgs = list(reversed(msgs[:MESSAGES_SHOWN]))
    wanted = {deal.buyer_id, deal.seller_id} | {x.author_id for x in msgs}
    wanted |= {r.created_by_id for r in rows if r.created_by_id}
    users = {u.id: u for u in s.scalars(select(m.User).where(m.User.id.in_(wanted)))}
    versions = list(state.versions)

    def author_role(author_id: str) -> str:
        if author_id == deal.buyer_id:
            return "buyer"
        return "seller" if author_id == deal.seller_id else "operator"

    action_forms = forms_for(deal, process, state, role, view["available_transitions"], fmt)
    events = list(
        s.scalars(
            select(m.Event)
            .where(m.Event.deal_id == deal.id, m.Event.type != "MESSAGE_POSTED")
            .order_by(m.Event.seq)
            .limit(EVENTS_SHOWN)
        )
    )
    names = {
        role_: (u.organization or u.name) if u else role_.capitalize()
        for role_, u in (("buyer", users.get(deal.buyer_id)), ("seller", users.get(deal.seller_id)))
    }
    names["operator"] = "The operator"
    room = Room(
        deal=deal,
        process=process,
        state=state,
        role=role,
        view=view,
        buyer=users.get(deal.buyer_id),
        seller=users.get(deal.seller_id),
        history=_history(versions, rows, users),
        decisions=_decisions(events, names),
        messages=[(x, users.get(x.author_id), author_role(x.author_id)) for x in msgs],
        messages_hidden=hidden,
        trust={p["id"]: p["trust"] for p in (view["buyer"], view["seller"]) if p and "trust" in p},
        forms=action_forms,
        live_listing=s.get(m.Listing, deal.listing_id),
        diff=pick_diff(versions, diff_from, diff_to),
    )
    room.task = task_card(room)
    return room
