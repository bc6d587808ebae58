"""What must happen after commit: collected during a transaction, published after it.

Services append to `UnitOfWork.outbox`; the edge lets the broker announce them inside the
transaction just before COMMIT (`announce`: PostgreSQL's NOTIFY is delivered with the commit
and dropped by a rollback), and hands them to the in-process subscribers only after a
successful commit; a rollback drops them. In-process subscribers (metrics) get every
item this process publishes, synchronously; a broker of `dealroom.realtime.hub` also carries
the items on to the live streams, in this process or, on PostgreSQL, in every API process.

This list is the only "outbox" in dealroom (docs/adr/0006-vocabulary.md); queued emails
and webhook deliveries are queues, drained by the worker after commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class OutboxItem:
    kind: str  # "event" | "notification" | ...
    deal_id: str | None
    payload: dict[str, Any]


Subscriber = Callable[[OutboxItem], None]


@dataclass
class Broker:
    """In-process fan-out of committed items.

    Subclasses deliver further by overriding `deliver`; `start` and `stop` bracket the
    application's life (the realtime brokers run a listener or a poller in between)."""

    _subscribers: list[Subscriber] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    published: int = 0

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, items: list[OutboxItem]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            self.published += len(items)
        for item in items:
            for fn in subscribers:
                fn(item)
        self.deliver(items)

    def announce(self, session: Session, items: list[OutboxItem]) -> None:
        """Inside the transaction, once its events are numbered and just before COMMIT:
        announce what the commit will make true, atomically with it (none here)."""

    def deliver(self, items: list[OutboxItem]) -> None:
        """Carry committed items beyond the in-process subscribers (none here)."""

    def start(self) -> None:
        """Begin background work (called once when the application starts)."""

    def stop(self) -> None:
        """End background work (called when the application stops)."""
