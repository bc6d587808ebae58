"""The negotiation engine: applies any process to a deal, purely.

`fire(process, deal, transition, actor, payload, now)` checks the actor, the state, the
turn, the quota and the rules, and returns an `Outcome`: the new deal state, the new quote
version if any, the status changes of earlier versions, the events to record, the timers
that should be pending afterwards, the notifications to send and the effects for adapters
(order, escrow, shipment, payments). It reads no clock and does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dealroom.domain import permissions, rules
from dealroom.domain.errors import (
    AlreadyAccepted,
    InvalidTransition,
    NotAuthorized,
)
from dealroom.domain.model import PARTIES, Process, Transition
from dealroom.domain.quotes import QuoteVersion, change_from
from dealroom.domain.state import (
    Actor,
    DealState,
    Effect,
    EventDraft,
    NotificationDraft,
    Outcome,
    Payload,
)
from dealroom.domain.timers import delayed_notifications, pending_timers

_ENDING_STATUS = {
    "reject-quote": "rejected",
    "withdraw-quote": "withdrawn",
    "expire-quote": "expired",
}
#: Sharetribe booking actions whose `booking` data the time expressions read later.
BOOKING_WRITES = frozenset(
    {
        "booking:create-pending-booking",
        "booking:create-proposed-booking",
        "booking:create-booking",
        "booking:update-booking",
    }
)
VERSION_ACTIONS = frozenset({"propose", "counter", "revise", "set-line-items"})


def recipients(to: tuple[str, ...], mover: str) -> tuple[str, ...]:
    """Resolve `other-party` against the role that moved."""
    out: list[str] = []
    for r in to:
        if r == "other-party":
            others = [p for p in PARTIES if p != mover]
            out += others if mover in PARTIES else list(PARTIES)
        else:
            out.append(r)
    return tuple(dict.fromkeys(out))


# --- firing -------------------------------------------------------------------------------


@dataclass
class _Work:
    """What the actions of one move build up."""

    deal: DealState
    role: str
    versions: list[QuoteVersion]
    data: dict[str, Any]
    proposals: int
    new_version: QuoteVersion | None = None
    status_changes: list[tuple[int, str]] = field(default_factory=list)
    extra_events: list[EventDraft] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    @property
    def pending(self) -> QuoteVersion | None:
        """The pending version as this move has left it so far."""
        return next((v for v in reversed(self.versions) if v.status == "pending"), None)

    def set_status(self, number: int, status: str) -> None:
        i = number - 1
        self.versions[i] = self.versions[i].with_status(status)
        self.status_changes.append((number, status))


def fire(
    process: Process,
    deal: DealState,
    transition: str,
    actor: Actor,
    payload: Payload | None = None,
    *,
    now: datetime,
) -> Outcome:
    payload = payload or Payload()
    t = process.transitions.get(transition)
    if t is None:
        raise InvalidTransition(
            f"'{transition}' is not a transition of the {process.name} process.",
            rule="STATE",
            transition=transition,
        )
    permissions.check_state(process, deal, t)
    permissions.check_actor(process, deal, t, actor)
    role = actor.role
    dst = t.destination(role)
    permissions.check_quota(process, deal, t, dst)

    permissions.check_answerable(deal, t, now)

    work = _Work(
        deal=deal,
        role=role,
        versions=list(deal.versions),
        data=dict(deal.data),
        proposals=deal.proposals,
    )
    for action in t.actions:
        _apply(action, process, t, work, actor, payload, now)
    if work.new_version is not None:  # as the move left it (buy-now accepts its own proposal)
        work.new_version = work.versions[work.new_version.number - 1]
        work.status_changes = [c for c in work.status_changes if c[0] != work.new_version.number]

    entered = dict(deal.entered)
    first = entered.get(dst, (now, now))[0]
    entered[dst] = (first, now)
    first_transitioned = dict(deal.first_transitioned)
    first_transitioned.setdefault(t.name, now)
    party_move = role in PARTIES
    new_deal = replace(
        deal,
        state=dst,
        versions=tuple(work.versions),
        proposals=work.proposals,
        transition_count=deal.transition_count + 1,
        initiated_at=deal.initiated_at or now,
        last_move_at=now if party_move or deal.last_move_at is None else deal.last_move_at,
        last_mover=role if party_move else deal.last_mover,
        last_transition=t.name,
        entered=entered,
        first_transitioned=first_transitioned,
        data=work.data,
    )

    event_payload: dict[str, Any] = {"transition": t.name}
    if party_move and deal.last_mover in PARTIES and deal.last_mover != role and deal.last_move_at:
        event_payload["response_seconds"] = int((now - deal.last_move_at).total_seconds())
    if work.new_version is not None:
        v = work.new_version
        event_payload.update(version=v.number, terms=v.terms.to_json())
        if v.price_change_pct is not None:
            event_payload["price_change_pct"] = str(v.price_change_pct)
        if v.lead_time_change_days is not None:
            event_payload["lead_time_change_days"] = v.lead_time_change_days
    elif work.status_changes:
        event_payload["version"] = work.status_changes[0][0]
    if payload.message:
        event_payload["message"] = payload.message
    if payload.reason:
        event_payload["reason"] = payload.reason
    if payload.timer_rule:
        event_payload["rule"] = payload.timer_rule
    if t.initial:
        for key in ("request", "offer"):
            if key in work.data:
                event_payload[key] = work.data[key]

    event_type = t.event_type(role)
    if role == "system" and payload.timer_rule:
        event_type = next(
            (
                r.event
                for r in t.timers
                if r.rule == payload.timer_rule and r.state == deal.state and r.event
            ),
            event_type,
        )
    events = [EventDraft(event_type, role, deal.state, dst, event_payload), *work.extra_events]

    notifications = tuple(
        NotificationDraft(n.name, recipients(n.to, role), n.template)
        for n in process.notifications
        if t.name in n.on and n.at is None and n.before is None
    )
    timers = pending_timers(process, new_deal, now)
    timers += delayed_notifications(process, t, new_deal, now)

    return Outcome(
        transition=t.name,
        actor_type=role,
        from_state=deal.state,
        deal=new_deal,
        quote=work.new_version,
        status_changes=tuple(work.status_changes),
        events=tuple(events),
        timers=tuple(timers),
        notifications=notifications,
        effects=tuple(work.effects),
    )


def _apply(
    action: str,
    process: Process,
    t: Transition,
    work: _Work,
    actor: Actor,
    payload: Payload,
    now: datetime,
) -> None:
    deal = work.deal
    if action == "open-request":
        work.data["request"] = rules.parse_request(deal, payload)
    elif action in VERSION_ACTIONS:
        _new_version(action, t, work, actor, payload, now)
    elif action == "accept-quote":
        if deal.accepted is not None:
            raise AlreadyAccepted(
                f"Version {deal.accepted.number} is already accepted.", rule="NEG-V06"
            )
        target = work.pending
        if target is None:
            raise InvalidTransition("There is no pending quote to accept.", rule="STATE")
        work.set_status(target.number, "accepted")
    elif action in ("reject-quote", "withdraw-quote", "expire-quote"):
        target = work.pending
        if target is not None:
            work.set_status(target.number, _ENDING_STATUS[action])
    elif action == "accept-update":
        pass  # the pending update simply becomes the offer on the table
    elif action == "restore-previous":
        # Withdrawing a counter puts the other party's earlier offer back on the table.
        target = deal.pending
        if target is not None:
            own = target.created_by_role == actor.role
            work.set_status(target.number, "withdrawn" if own else "rejected")
            earlier = next(
                (v for v in reversed(work.versions) if v.created_by_role != target.created_by_role),
                None,
            )
            if earlier is not None:
                restored = replace(
                    earlier,
                    number=len(work.versions) + 1,
                    created_at=now,
                    status="pending",
                    change_reason="terms_change",
                    message=payload.message,
                    price_change_pct=None,
                    lead_time_change_days=None,
                    is_proposal=False,
                )
                work.versions.append(restored)
                work.new_version = restored
    elif action == "create-order":
        accepted = next((v for v in work.versions if v.status == "accepted"), None) or deal.current
        if accepted is None:
            raise InvalidTransition("There are no terms to order.", rule="STATE")
        params = {
            "version": accepted.number,
            "total": str(accepted.terms.total),
            "currency": accepted.terms.currency,
        }
        work.effects.append(Effect("create-order", params))
        work.extra_events.append(EventDraft("ORDER_CREATED", "system", None, None, params))
    elif action == "open-escrow":
        waived = bool(work.data.get("escrow_waived"))
        work.effects.append(Effect("open-escrow", {"waived": waived}))
        work.extra_events.append(
            EventDraft("ESCROW_WAIVED" if waived else "ESCROW_OPENED", "system", None, None, {})
        )
    elif action == "create-shipment":
        work.effects.append(Effect("create-shipment"))
        work.extra_events.append(EventDraft("SHIPMENT_CREATED", "system", None, None, {}))
    elif action == "request-close":
        waived = payload.data.get("escrow_waived", False)
        if not isinstance(waived, bool):
            raise rules.field_error(
                "escrow_waived", "REQUEST", "escrow_waived must be true or false."
            )
        work.data["escrow_waived"] = waived
    elif action == "request-info":
        work.data["info_requested"] = {"at": now.isoformat(), "message": payload.message}
    elif action == "update-protected-data":
        work.data["protected_data"] = {
            **work.data.get("protected_data", {}),
            **rules.mapping_field(payload.data, "protectedData"),
        }
    elif action == "update-metadata":
        work.data["metadata"] = {
            **work.data.get("metadata", {}),
            **rules.mapping_field(payload.data, "metadata"),
        }
    elif action in ("post-review-by-buyer", "post-review-by-seller"):
        by = action.removeprefix("post-review-by-")
        reviews = dict(work.data.get("reviews", {}))
        reviews[by] = {**rules.parse_review(payload), "at": now.isoformat(), "published": False}
        work.data["reviews"] = reviews
    elif action == "publish-reviews":
        work.data["reviews"] = {
            k: {**v, "published": True} for k, v in work.data.get("reviews", {}).items()
        }
    else:  # a namespaced effect for an adapter: payment:…, booking:…, stock:…, effect:…
        if action in BOOKING_WRITES:
            booking = payload.data.get("booking")
            if booking is not None:
                if not isinstance(booking, Mapping):
                    raise rules.field_error(
                        "booking", "BOOKING", "booking must be an object with start and end."
                    )
                work.data["booking"] = {**work.data.get("booking", {}), **booking}
        work.effects.append(Effect(action, dict(payload.data)))


def _new_version(
    action: str, t: Transition, work: _Work, actor: Actor, payload: Payload, now: datetime
) -> None:
    deal = work.deal
    role = actor.role if actor.role in PARTIES else t.proposer
    if role is None:
        raise NotAuthorized("Only the buyer or the seller can propose terms.", rule="ACTOR")
    pending = deal.pending
    settings = deal.settings
    is_proposal = action != "revise" and not (
        action == "set-line-items" and pending and pending.created_by_role == role
    )
    if settings.counter_rules:
        rules.check_limits(deal, settings, counting=is_proposal)
    base = pending.terms if pending else (deal.current.terms if deal.current else None)
    if t.listing_price:
        asked = (payload.terms or {}).get("unit_price")
        if asked is not None and str(asked).strip() not in (
            str(deal.listing.unit_price),
            f"{deal.listing.unit_price:f}",
        ):
            raise rules.field_error(
                "unit_price",
                "BUY-NOW",
                f"'{t.name}' is at the listing's price, {deal.listing.unit_price} "
                f"{deal.listing.currency}; make an offer to propose another.",
            )
        payload = replace(
            payload, terms={**(payload.terms or {}), "unit_price": str(deal.listing.unit_price)}
        )
    terms = rules.build_terms(deal, payload, base=base, now=now, role=role)
    if settings.counter_rules:
        rules.check_counter_rules(action, deal, terms, payload, base)
    if settings.offer_rules and role == "buyer":
        rules.check_offer_rules(action, deal, terms, payload, actor, now)
        if deal.state is None:  # the opening offer's buyer details stay with the deal
            work.data["offer"] = {
                k: payload.data[k] for k in rules.OFFER_DETAIL_FIELDS if k in payload.data
            }

    own_previous = next((v for v in reversed(work.versions) if v.created_by_role == role), None)
    pct, lead = change_from(own_previous or pending, terms)
    if action == "revise" or (pending is not None and pending.created_by_role == role):
        reason = "seller_revision" if role == "seller" else "terms_change"
        if pending is not None:
            work.set_status(pending.number, "superseded")
    else:
        reason = (
            "initial"
            if not work.versions
            else ("buyer_counter" if role == "buyer" else "seller_revision")
        )
        if pending is not None:
            work.set_status(pending.number, "countered")
    version = QuoteVersion(
        number=len(work.versions) + 1,
        terms=terms,
        created_by_role=role,
        created_at=now,
        change_reason=reason,
        message=payload.message,
        price_change_pct=pct,
        lead_time_change_days=lead,
        is_proposal=is_proposal,
    )
    work.versions.append(version)
    work.new_version = version
    if is_proposal:
        work.proposals += 1
