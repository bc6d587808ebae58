"""When a deal's timers come due.

`DealClock` gives the time expressions of a process file the moments they name (when the
deal entered a state, the pending quote's validity, a Sharetribe booking's start…);
`pending_timers` lists the timers a deal should have pending as it stands, and
`delayed_notifications` the reminders a move schedules. The services keep the timer rows
in step with these lists; the worker fires what comes due.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dealroom.domain.model import Process, Transition
from dealroom.domain.state import DealState, TimerDraft
from dealroom.domain.timeexpr import Period


class DealClock:
    """The time points a process's time expressions name, read off one deal.

    `timer_state` is the state whose timers are being scheduled: `entered` means the
    moment the deal last entered it.
    """

    def __init__(self, deal: DealState, now: datetime, timer_state: str | None) -> None:
        self.deal = deal
        self.now = now
        self.timer_state = timer_state

    def timepoint(self, name: str, arg: str | None) -> datetime | None:
        d = self.deal
        if name == "tx-initiated":
            return d.initiated_at
        if name in ("entered", "first-entered-state", "last-entered-state"):
            times = d.entered.get((self.timer_state if name == "entered" else arg) or "")
            if times is None:
                return None
            return times[0] if name == "first-entered-state" else times[1]
        if name == "last-move":
            return d.last_move_at
        if name == "first-transitioned":
            return d.first_transitioned.get(arg or "")
        if name == "quote-valid-until":
            return d.pending.terms.valid_until if d.pending else None
        if name == "quote-created":
            return d.pending.created_at if d.pending else None
        if name.startswith("booking-"):
            booking = d.data.get("booking")
            if not isinstance(booking, Mapping):
                return None
            key = name.removeprefix("booking-")  # start, end, display-start, display-end
            camel = key.replace("-s", "S").replace("-e", "E")  # Sharetribe's displayStart
            return _as_time(booking.get(key, booking.get(camel)))
        if name == "data":
            return _as_time(d.data.get(arg or ""))
        return None

    def setting_period(self, name: str) -> Period:
        return self.deal.settings.period(name)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def pending_timers(process: Process, deal: DealState, now: datetime) -> list[TimerDraft]:
    """The timers that should be pending for `deal` as it stands."""
    state = deal.state
    if state is None or state in process.final_states:
        return []
    clock = DealClock(deal, now, state)
    pending = deal.pending
    drafts: list[TimerDraft] = []
    for t, rule in process.timer_transitions(state):
        if rule.pending_by and (pending is None or pending.created_by_role != rule.pending_by):
            continue
        if rule.after and deal.last_transition not in rule.after:
            continue
        due = rule.at.evaluate(clock)
        if due is not None:
            drafts.append(TimerDraft("transition", t.name, due, state, rule.rule, rule.event))
    for n in process.notifications:
        if n.before is None or (n.state is not None and n.state != state):
            continue
        target = min(
            (d.due_at for d in drafts if n.before in (d.name, d.rule) and d.kind == "transition"),
            default=None,
        )
        if target is None or n.by is None:
            continue
        period = Period.parse(n.by) if n.by.startswith("P") else deal.settings.period(n.by)
        due = period.add_to(target, -1)
        if due > now:
            drafts.append(TimerDraft("notification", n.name, due, state))
    return drafts


def delayed_notifications(
    process: Process, transition: Transition, deal: DealState, now: datetime
) -> list[TimerDraft]:
    """The notifications with an `at` that firing `transition` schedules (Sharetribe's
    delayed notifications), due in the state it led to; none once the deal is closed."""
    state = deal.state
    if state is None or state in process.final_states:
        return []
    clock = DealClock(deal, now, state)
    drafts: list[TimerDraft] = []
    for n in process.notifications:
        if transition.name in n.on and n.at is not None:
            due = n.at.evaluate(clock)
            if due is not None:
                drafts.append(TimerDraft("notification", n.name, due, state))
    return drafts
