"""Realtime: committed events and bell items carried to the open SSE streams.

One `Hub` per API process holds the subscriptions of its open streams and hands each
committed item to the streams that may see it, through the stream's asyncio queue
(`loop.call_soon_threadsafe`, since items arrive on a publisher's or the listener's
thread; one call per event loop and item, however many streams share the loop).

Events leave the hub in feed order. `feed_seq` is dense and numbered in commit order
(`services.feed.number_feed`), so once event N is committed every event before it is
committed too: when N arrives before N-1 (two publishers racing after their commits, a
NOTIFY lost during a reconnect), the hub reads the missing ones from the database and
hands them on first. A stream therefore never gets event N+1 before N, and a client
resuming after the last position it got never skips an event committed later.

The brokers that feed it are in `dealroom.realtime.brokers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.feed import event_json
from dealroom.services.uow import session_scope

log = logging.getLogger("dealroom.realtime")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; keep a margin.
NOTIFY_LIMIT = 7900
#: Events read from the database per query when filling a gap or a tail.
READ_BATCH = 500


@dataclass(frozen=True)
class RealtimeSettings:
    #: Seconds between heartbeat comments on an idle stream (proxies drop silent ones).
    heartbeat_seconds: float = 15.0
    #: Seconds between reads of the feed's and the bell's tails.
    poll_seconds: float = 2.0
    #: A stream whose client takes longer than this to accept one write is closed.
    send_timeout_seconds: float = 30.0
    #: Items queued for one stream before it stops queueing and re-reads the database.
    max_queue: int = 10_000


def settings_from_env() -> RealtimeSettings:
    env = os.environ
    return RealtimeSettings(
        heartbeat_seconds=float(env.get("DEALROOM_SSE_HEARTBEAT", 15)),
        poll_seconds=float(env.get("DEALROOM_REALTIME_POLL", 2)),
        send_timeout_seconds=float(env.get("DEALROOM_SSE_SEND_TIMEOUT", 30)),
    )


# --- what a stream receives ---------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One item for a stream. `event` carries the event as JSON text, encoded once for all
    streams; `notification` says the user has new bell items (the stream reads them, so
    it can resume by id); `unread` carries a new unread count; `resync` tells the stream
    to re-read everything after its position from the database."""

    kind: Literal["event", "notification", "unread", "resync"]
    deal_id: str | None = None
    seq: int = 0
    feed_seq: int = 0
    data: str = ""
    user_id: str | None = None


RESYNC = Delivery("resync")


def event_delivery(event: dict[str, Any]) -> Delivery:
    return Delivery(
        "event",
        deal_id=event["deal_id"],
        seq=int(event["seq"]),
        feed_seq=int(event["feed_seq"]),
        data=json.dumps(event, separators=(",", ":"), ensure_ascii=False),
    )


class Subscription:
    """One open stream: what it wants, and the queue it reads on its event loop."""

    def __init__(
        self,
        hub: Hub,
        loop: asyncio.AbstractEventLoop,
        *,
        deal_id: str | None,
        user_id: str | None,
        staff: bool,
        max_queue: int,
    ) -> None:
        self.hub = hub
        self.loop = loop
        self.deal_id = deal_id
        self.user_id = user_id
        self.staff = staff
        self.max_queue = max_queue
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.closed = False

    def put(self, delivery: Delivery) -> None:
        """On the subscription's loop."""
        if self.closed:
            return
        if self.queue.qsize() >= self.max_queue:
            # A reader this far behind catches up from the database instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            delivery = RESYNC
        self.queue.put_nowait(delivery)

    async def get(self, timeout: float) -> Delivery | None:
        """The next item, or None after `timeout` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), max(timeout, 0.0))
        except TimeoutError:
            return None

    def pending(self) -> int:
        return self.queue.qsize()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self)


def _put_all(batch: list[tuple[Subscription, Delivery]]) -> None:
    for sub, delivery in batch:
        sub.put(delivery)


Pending = dict[asyncio.AbstractEventLoop, list[tuple[Subscription, Delivery]]]


@dataclass
class HubStats:
    events: int = 0  # events handed on, in feed order
    read_from_db: int = 0  # of which read from the database (gaps and tails)
    deliveries: int = 0  # items put on stream queues
    subscriptions: int = 0


class Hub:
    """The streams of this process and the feed position handed on to them."""

    def __init__(self, db: Database, settings: RealtimeSettings | None = None) -> None:
        self.db = db
        self.settings = settings or RealtimeSettings()
        self.stats = HubStats()
        self._lock = threading.RLock()
        self._by_deal: dict[str, set[Subscription]] = {}
        self._by_user: dict[str, set[Subscription]] = {}
        self._staff: set[Subscription] = set()
        self._all: set[Subscription] = set()
        #: The last feed position handed on; every event up to it has been.
        self._feed_head: int | None = None
        #: The last notification id whose user was told (the bell's tail).
        self._bell_head: int | None = None
        self._parties: OrderedDict[str, tuple[str, str]] = OrderedDict()

    # --- heads ----------------------------------------------------------------------------

    def prime(self) -> None:
        """Read the heads, once. Anything committed up to them predates every subscription,
        and each stream reads what predates it from the database itself."""
        with self._lock:
            if self._feed_head is None:
                with session_scope(self.db, write=False) as s:
                    self._feed_head = _max(s, m.Event.feed_seq)
                    self._bell_head = _max(s, m.Notification.id)

    @property
    def feed_head(self) -> int:
        self.prime()
        assert self._feed_head is not None
        return self._feed_head

    # --- subscriptions (on the stream's event loop) ---------------------------------------

    def subscribe(
        self, *, deal_id: str | None = None, user_id: str | None = None, staff: bool = False
    ) -> Subscription:
        """A deal's stream (`deal_id`) or a user's own stream (`user_id`; `staff` sees the
        events of every deal). Subscribe first, then read the past: nothing falls between."""
        sub = Subscription(
            self,
            asyncio.get_running_loop(),
            deal_id=deal_id,
            user_id=user_id,
            staff=staff,
            max_queue=self.settings.max_queue,
        )
        with self._lock:
            self.prime()
            if deal_id is not None:
                self._by_deal.setdefault(deal_id, set()).add(sub)
            if user_id is not None:
                self._by_user.setdefault(user_id, set()).add(sub)
                if staff:
                    self._staff.add(sub)
            self._all.add(sub)
            self.stats.subscriptions = len(self._all)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            for index, key in ((self._by_deal, sub.deal_id), (self._by_user, sub.user_id)):
                if key is not None and key in index:
                    index[key].discard(sub)
                    if not index[key]:
                        del index[key]
            self._staff.discard(sub)
            self._all.discard(sub)
            self.stats.subscriptions = len(self._all)

    # --- handing items on (on any thread) -------------------------------------------------

    def publish_events(
        self, events: Iterable[dict[str, Any]] = (), refs: Iterable[int] = ()
    ) -> None:
        """Committed events (as `event_json`), or references to them by feed position, in
        any order and possibly already handed on; each leaves the hub once, in order."""
        items: list[tuple[int, dict[str, Any] | None]] = [(int(e["feed_seq"]), e) for e in events]
        items += [(int(f), None) for f in refs]
        if not items:
            return
        items.sort(key=lambda x: x[0])
        with self._lock:
            self.prime()
            pending: Pending = {}
            for position, event in items:
                if event is None:
                    self._advance_to(position, pending)
                    continue
                self._advance_to(position - 1, pending)
                if position == (self._feed_head or 0) + 1:
                    self._route(event, pending)
                    self._feed_head = position
            self._flush(pending)

    def publish_bell(self, user_ids: Iterable[str]) -> None:
        """These users have new bell items."""
        with self._lock:
            pending: Pending = {}
            for user_id in dict.fromkeys(user_ids):
                delivery = Delivery("notification", user_id=user_id)
                for sub in self._by_user.get(user_id, ()):
                    pending.setdefault(sub.loop, []).append((sub, delivery))
            self._flush(pending)

    def publish_unread(self, user_id: str, unread_count: int) -> None:
        data = json.dumps({"unread_count": unread_count})
        with self._lock:
            pending: Pending = {}
            delivery = Delivery("unread", user_id=user_id, data=data)
            for sub in self._by_user.get(user_id, ()):
                pending.setdefault(sub.loop, []).append((sub, delivery))
            self._flush(pending)

    def resync_all(self) -> None:
        """Every stream re-reads from the database (after the listener lost its connection)."""
        with self._lock:
            pending: Pending = {}
            for sub in self._all:
                pending.setdefault(sub.loop, []).append((sub, RESYNC))
            self._flush(pending)

    def catch_up(self) -> None:
        """Hand on what was committed but never announced: read both tails."""
        with self._lock:
            if self._feed_head is None:
                self.prime()
                return
            pending: Pending = {}
            with session_scope(self.db, write=False) as s:
                # The bell first: a notification's events commit with it, so reading the feed
                # after it hands those events on before the user hears of the notification.
                bell_top = _max(s, m.Notification.id)
                feed_top = _max(s, m.Event.feed_seq)
                users: list[str] = []
                if self._bell_head is not None and bell_top > self._bell_head:
                    users = list(
                        s.scalars(
                            select(m.Notification.user_id)
                            .where(
                                m.Notification.id > self._bell_head,
                                m.Notification.id <= bell_top,
                            )
                            .distinct()
                        )
                    )
            self._bell_head = bell_top
            self._advance_to(feed_top, pending)
            self._flush(pending)
        if users:
            self.publish_bell(users)

    # --- inside the lock ------------------------------------------------------------------

    def _advance_to(self, upto: int, pending: Pending) -> None:
        """Hand on every event up to feed position `upto` not handed on yet, reading them
        from the database: they are committed, since a later position is."""
        assert self._feed_head is not None
        while self._feed_head < upto:
            with session_scope(self.db, write=False) as s:
                rows = [
                    event_json(e)
                    for e in s.scalars(
                        select(m.Event)
                        .where(m.Event.feed_seq > self._feed_head, m.Event.feed_seq <= upto)
                        .order_by(m.Event.feed_seq)
                        .limit(READ_BATCH)
                    )
                ]
            if not rows:
                self._feed_head = upto  # positions never used (tables emptied under us)
                break
            for event in rows:
                self._route(event, pending)
                self._feed_head = int(event["feed_seq"])
            self.stats.read_from_db += len(rows)

    def _route(self, event: dict[str, Any], pending: Pending) -> None:
        self.stats.events += 1
        deal_id = event["deal_id"]
        targets = set(self._by_deal.get(deal_id, ()))
        targets |= self._staff
        if self._by_user:
            for party in self._parties_of(deal_id):
                targets |= self._by_user.get(party, set())
        if not targets:
            return
        delivery = event_delivery(event)
        for sub in targets:
            pending.setdefault(sub.loop, []).append((sub, delivery))

    def _parties_of(self, deal_id: str) -> tuple[str, str]:
        """Buyer and seller of a deal (they never change, so they are remembered)."""
        found = self._parties.get(deal_id)
        if found is not None:
            self._parties.move_to_end(deal_id)
            return found
        with session_scope(self.db, write=False) as s:
            row = s.execute(
                select(m.Deal.buyer_id, m.Deal.seller_id).where(m.Deal.id == deal_id)
            ).one_or_none()
        found = (row[0], row[1]) if row is not None else ("", "")
        self._parties[deal_id] = found
        if len(self._parties) > 50_000:
            self._parties.popitem(last=False)
        return found

    def _flush(self, pending: Pending) -> None:
        # Under the lock, so that items reach each loop in the order they left the hub.
        for loop, batch in pending.items():
            self.stats.deliveries += len(batch)
            with contextlib.suppress(RuntimeError):  # a closed loop: its streams are gone
                loop.call_soon_threadsafe(_put_all, batch)


def _max(session: Any, column: Any) -> int:
    return int(session.execute(select(func.coalesce(func.max(column), 0))).scalar_one())
