"""The process model: states and transitions as data.

A `Process` is what a process file describes. The engine applies any process; nothing in
the engine branches on a process's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from dealroom.domain.settings import Settings
from dealroom.domain.timeexpr import Expr

PARTIES = ("buyer", "seller")
#: Who may appear in a transition's `actor`.
ACTORS = frozenset({"buyer", "seller", "operator", "system", "counterparty", "author"})
#: Roles a notification may go to.
RECIPIENTS = frozenset({"buyer", "seller", "operator", "other-party"})


@dataclass(frozen=True)
class TimerRule:
    """An automatic firing of a transition while the deal waits in `state`."""

    state: str
    at: Expr
    rule: str | None = None
    event: str | None = None
    #: Only when the pending quote version was made by this party.
    pending_by: str | None = None
    #: Only when the deal entered the state through one of these transitions.
    after: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Transition:
    name: str
    #: States it leaves from; empty for an initial transition.
    src: frozenset[str]
    #: The state it leads to, by the firing party's role when that decides (`rfq` counter).
    dst: str
    dst_by_role: Mapping[str, str] = field(default_factory=dict)
    actors: frozenset[str] = frozenset()
    actions: tuple[str, ...] = ()
    #: Event type recorded, by role where it differs (`*` for everyone else).
    events: Mapping[str, str] = field(default_factory=dict)
    timers: tuple[TimerRule, ...] = ()
    privileged: bool = False
    #: Rule id to name when the actor check refuses (e.g. CTR-004 for turn-taking moves).
    actor_rule: str | None = None
    title: str | None = None
    #: Listing sale modes this transition is offered for (empty: all).
    sale_modes: frozenset[str] = frozenset()
    #: Whose terms a move by the system or an operator carries (an auction's winning bid).
    proposer: str | None = None
    #: The price is the listing's (buy-now): a move may choose the quantity, not the price.
    listing_price: bool = False

    @property
    def initial(self) -> bool:
        return not self.src

    @property
    def automatic(self) -> bool:
        return bool(self.timers)

    def destinations(self) -> set[str]:
        return {self.dst, *self.dst_by_role.values()}

    def destination(self, role: str) -> str:
        return self.dst_by_role.get(role, self.dst)

    def event_type(self, role: str) -> str:
        return self.events.get(role) or self.events.get("*") or self.name.upper().replace("-", "_")


@dataclass(frozen=True)
class Notification:
    """A bell item (and email) sent when a transition fires, or later as a reminder.

    `at` delays it (Sharetribe's delayed notifications); `before`/`by` schedule it a period
    before a timer of the current state fires (the rfq reference's "quote expiring"):
    `before` names the timer's transition or its rule id.
    A delayed one is dropped when the deal leaves the state it was scheduled in.
    """

    name: str
    to: tuple[str, ...]
    template: str
    on: tuple[str, ...] = ()
    state: str | None = None
    at: Expr | None = None
    before: str | None = None
    by: str | None = None  # a setting name or an ISO period, with `before`


@dataclass(frozen=True)
class Process:
    name: str
    version: int
    states: tuple[str, ...]
    transitions: Mapping[str, Transition]
    settings: Settings = field(default_factory=Settings)
    notifications: tuple[Notification, ...] = ()
    title: str = ""
    description: str = ""
    state_titles: Mapping[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    @cached_property
    def initial_transitions(self) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions.values() if t.initial)

    @cached_property
    def final_states(self) -> frozenset[str]:
        leaving = {s for t in self.transitions.values() for s in t.src}
        return frozenset(s for s in self.states if s not in leaving)

    @cached_property
    def outgoing(self) -> Mapping[str, tuple[Transition, ...]]:
        out: dict[str, list[Transition]] = {s: [] for s in self.states}
        for t in self.transitions.values():
            for s in t.src:
                out[s].append(t)
        return {s: tuple(ts) for s, ts in out.items()}

    @cached_property
    def steps_to_final(self) -> Mapping[str, int]:
        """Fewest transitions from each state to a final state (breadth-first, backwards)."""
        dist = dict.fromkeys(self.final_states, 0)
        frontier = list(self.final_states)
        incoming: dict[str, set[str]] = {s: set() for s in self.states}
        for t in self.transitions.values():
            for d in t.destinations():
                incoming.setdefault(d, set()).update(t.src)
        while frontier:
            nxt = []
            for s in frontier:
                for p in incoming.get(s, ()):
                    if p not in dist:
                        dist[p] = dist[s] + 1
                        nxt.append(p)
            frontier = nxt
        return dist

    @cached_property
    def reachable_from(self) -> Mapping[str, frozenset[str]]:
        """States reachable (one or more steps) from each state."""
        out: dict[str, frozenset[str]] = {}
        for start in self.states:
            seen: set[str] = set()
            stack = [d for t in self.outgoing.get(start, ()) for d in t.destinations()]
            while stack:
                s = stack.pop()
                if s in seen:
                    continue
                seen.add(s)
                stack.extend(d for t in self.outgoing.get(s, ()) for d in t.destinations())
            out[start] = frozenset(seen)
        return out

    def is_looping(self, transition: Transition, dst: str) -> bool:
        """A move is looping when its destination can lead back to where it came from."""
        return any(s == dst or s in self.reachable_from.get(dst, ()) for s in transition.src)

    def timer_transitions(self, state: str) -> list[tuple[Transition, TimerRule]]:
        return [
            (t, rule)
            for t in self.outgoing.get(state, ())
            for rule in t.timers
            if rule.state == state
        ]
