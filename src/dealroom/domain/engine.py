"""The negotiation engine: applies any process to a deal, purely.

`fire(process, deal, transition, actor, payload, now)` checks who may move and when
(`permissions`), runs the transition's actions in order (`actions`, a table), and returns
an `Outcome` (`state`): the new deal state, the new quote version if any, the status
changes of earlier versions, the events to record, the timers that should be pending
afterwards (`timers`), the notifications to send and the effects for adapters (order,
escrow, shipment, payments). It reads no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from dealroom.domain import actions, permissions
from dealroom.domain.errors import InvalidTransition
from dealroom.domain.model import PARTIES, Process
from dealroom.domain.state import Actor, DealState, EventDraft, NotificationDraft, Outcome, Payload
from dealroom.domain.timers import delayed_notifications, pending_timers


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

    move = actions.Move(
        deal=deal,
        transition=t,
        actor=actor,
        payload=payload,
        now=now,
        versions=list(deal.versions),
        data=dict(deal.data),
        proposals=deal.proposals,
    )
    for action in t.actions:
        actions.apply(move, action)
    if move.new_version is not None:  # as the move left it (buy-now accepts its own proposal)
        move.new_version = move.versions[move.new_version.number - 1]
        move.status_changes = [c for c in move.status_changes if c[0] != move.new_version.number]

    entered = dict(deal.entered)
    first = entered.get(dst, (now, now))[0]
    entered[dst] = (first, now)
    first_transitioned = dict(deal.first_transitioned)
    first_transitioned.setdefault(t.name, now)
    party_move = role in PARTIES
    new_deal = replace(
        deal,
        state=dst,
        versions=tuple(move.versions),
        proposals=move.proposals,
        transition_count=deal.transition_count + 1,
        initiated_at=deal.initiated_at or now,
        last_move_at=now if party_move or deal.last_move_at is None else deal.last_move_at,
        last_mover=role if party_move else deal.last_mover,
        last_transition=t.name,
        entered=entered,
        first_transitioned=first_transitioned,
        data=move.data,
    )

    events = [_event(move, dst), *move.extra_events]

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
        quote=move.new_version,
        status_changes=tuple(move.status_changes),
        events=tuple(events),
        timers=tuple(timers),
        notifications=notifications,
        effects=tuple(move.effects),
    )


def _event(move: actions.Move, dst: str) -> EventDraft:
    """The move's own event; what its actions recorded (ORDER_CREATED…) follows it."""
    t, deal, payload, now = move.transition, move.deal, move.payload, move.now
    role = move.actor.role
    party_move = role in PARTIES
    event_payload: dict[str, Any] = {"transition": t.name}
    if party_move and deal.last_mover in PARTIES and deal.last_mover != role and deal.last_move_at:
        event_payload["response_seconds"] = int((now - deal.last_move_at).total_seconds())
    if move.new_version is not None:
        v = move.new_version
        event_payload.update(version=v.number, terms=v.terms.to_json())
        if v.price_change_pct is not None:
            event_payload["price_change_pct"] = str(v.price_change_pct)
        if v.lead_time_change_days is not None:
            event_payload["lead_time_change_days"] = v.lead_time_change_days
    elif move.status_changes:
        event_payload["version"] = move.status_changes[0][0]
    if payload.message:
        event_payload["message"] = payload.message
    if payload.reason:
        event_payload["reason"] = payload.reason
    if payload.timer_rule:
        event_payload["rule"] = payload.timer_rule
    if t.initial:
        for key in ("request", "offer"):
            if key in move.data:
                event_payload[key] = move.data[key]

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
    return EventDraft(event_type, role, deal.state, dst, event_payload)


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
