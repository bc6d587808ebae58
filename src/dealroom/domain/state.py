"""The values the engine reads and returns.

A deal as it stands (`DealState`, with its frozen `Listing` snapshot), who moves (`Actor`),
what they send (`Payload`), and what a move decided (`Outcome`, with the drafts of the
events, timers, notifications and adapter effects the services persist). Plain frozen
values: the services build them from rows, and nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from dealroom.domain.quotes import QuoteVersion, accepted_version, pending_version
from dealroom.domain.settings import Settings


@dataclass(frozen=True)
class Listing:
    """What the engine reads of the frozen listing snapshot."""

    currency: str
    unit_price: Decimal
    quantity: int = 1
    min_order_qty: int | None = None
    max_order_qty: int | None = None
    sale_mode: str = "negotiable"
    category: str | None = None
    title: str = ""


@dataclass(frozen=True)
class Actor:
    """Who fires a transition, as the service resolved them for this deal."""

    role: str  # buyer | seller | operator | system
    user_id: str | None = None
    kyc_verified: bool = False
    plan: str = "free"
    created_at: datetime | None = None
    blocked: bool = False


SYSTEM = Actor(role="system")


@dataclass(frozen=True)
class Payload:
    terms: Mapping[str, Any] | None = None
    message: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    #: For a timer firing: the rule id of the timer that came due.
    timer_rule: str | None = None


@dataclass(frozen=True)
class DealState:
    process: str
    listing: Listing
    settings: Settings
    buyer_id: str | None = None
    seller_id: str | None = None
    state: str | None = None
    versions: tuple[QuoteVersion, ...] = ()
    proposals: int = 0
    transition_count: int = 0
    initiated_at: datetime | None = None
    last_move_at: datetime | None = None
    last_mover: str | None = None
    last_transition: str | None = None
    #: state -> (first entered, last entered)
    entered: Mapping[str, tuple[datetime, datetime]] = field(default_factory=dict)
    first_transitioned: Mapping[str, datetime] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def round(self) -> int:
        """A round is an offer and its answer: proposals counted in pairs."""
        return math.ceil(self.proposals / 2)

    @property
    def pending(self) -> QuoteVersion | None:
        return pending_version(self.versions)

    @property
    def accepted(self) -> QuoteVersion | None:
        return accepted_version(self.versions)

    @property
    def current(self) -> QuoteVersion | None:
        return self.pending or self.accepted or (self.versions[-1] if self.versions else None)


@dataclass(frozen=True)
class EventDraft:
    type: str
    actor_type: str  # buyer | seller | operator | system
    from_state: str | None
    to_state: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class TimerDraft:
    kind: str  # "transition" or "notification"
    name: str
    due_at: datetime
    state: str
    rule: str | None = None
    event: str | None = None


@dataclass(frozen=True)
class NotificationDraft:
    name: str
    to: tuple[str, ...]
    template: str


@dataclass(frozen=True)
class Effect:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    transition: str
    actor_type: str
    from_state: str | None
    deal: DealState
    quote: QuoteVersion | None
    #: (version number, new status) for earlier versions whose status moved.
    status_changes: tuple[tuple[int, str], ...]
    events: tuple[EventDraft, ...]
    #: The timers the deal should have pending after this move; all others are cancelled.
    timers: tuple[TimerDraft, ...]
    notifications: tuple[NotificationDraft, ...]
    effects: tuple[Effect, ...]

    @property
    def to_state(self) -> str:
        assert self.deal.state is not None
        return self.deal.state
