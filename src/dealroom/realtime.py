"""Realtime: committed events and bell items carried to the open SSE streams.

One `Hub` per API process holds the subscriptions of its open streams and hands each
committed item to the streams that may see it, through the stream's asyncio queue
(`loop.call_soon_threadsafe`, since items arrive on a publisher's or the listener's
thread; one call per event loop and item, however many streams share the loop).

Events leave the hub in feed order. `feed_seq` is dense and numbered in commit order
(`services.audit.number_feed`), so once event N is committed every event before it is
committed too: when N arrives before N-1 (two publishers racing after their commits, a
NOTIFY lost during a reconnect), the hub reads the missing ones from the database and
hands them on first. A stream therefore never gets event N+1 before N, and a client
resuming after the last position it got never skips an event committed later.

Brokers (`make_broker` picks one from the database URL):

- `LocalBroker` (embedded mode, SQLite): `publish` hands the items straight to the hub.
- `PostgresBroker`: `announce` sends `pg_notify('dealroom', …)` inside the move's own
  transaction, just before its COMMIT (PostgreSQL delivers a NOTIFY with the commit and
  drops it on rollback, so nothing uncommitted is ever announced), and every API process
  runs one `Listener` thread (`LISTEN dealroom`, reconnecting on failure) that hands what
  it hears to its own hub. An event whose JSON would not fit
  NOTIFY's 8000-byte payload travels by reference (`{"kind": "event", "feed_seq": N}`)
  and the listener reads the row.

Both also read the tails of the feed and of the bell every few seconds (two indexed
`max()` queries), which delivers what was committed but never announced: a worker in
another process on SQLite, a NOTIFY a listener missed while it was reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.outbox import Broker, OutboxItem
from dealroom.services.audit import event_json

log = logging.getLogger("dealroom.realtime")

CHANNEL = "dealroom"
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
                with self.db.transaction(write=False) as s:
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
            with self.db.transaction(write=False) as s:
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
            with self.db.transaction(write=False) as s:
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
        with self.db.transaction(write=False) as s:
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


# --- brokers ------------------------------------------------------------------------------


def _sorted_out(items: list[OutboxItem]) -> tuple[list[dict[str, Any]], list[str]]:
    events = [i.payload for i in items if i.kind == "event" and "feed_seq" in i.payload]
    users = [
        str(i.payload["user_id"])
        for i in items
        if i.kind == "notification" and i.payload.get("user_id")
    ]
    return events, users


def _unread(items: list[OutboxItem]) -> list[tuple[str, int]]:
    return [
        (str(i.payload["user_id"]), int(i.payload["unread_count"]))
        for i in items
        if i.kind == "unread"
    ]


class RealtimeBroker(Broker):
    """A broker that feeds a hub; `hub` is what the stream routes subscribe to."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        try:
            self.hub.prime()
        except Exception:  # the database may not be migrated yet; streams prime on use
            log.warning("realtime: could not read the feed head at start", exc_info=True)
        self._thread = threading.Thread(target=self._run, name="dealroom-realtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError


class LocalBroker(RealtimeBroker):
    """Embedded mode: one process, so the committed items go straight to the hub."""

    def deliver(self, items: list[OutboxItem]) -> None:
        events, users = _sorted_out(items)
        try:
            self.hub.publish_events(events)
            self.hub.publish_bell(users)
            for user_id, count in _unread(items):
                self.hub.publish_unread(user_id, count)
        except Exception:
            # Already committed: the tail poll hands the items on in a moment.
            log.exception("realtime: handing on committed items failed")

    def _run(self) -> None:
        """Poll the tails (events committed by another process on the same file)."""
        while not self._stop.wait(self.hub.settings.poll_seconds):
            try:
                self.hub.catch_up()
            except Exception:
                log.warning("realtime: reading the tails failed", exc_info=True)


def notify_payloads(items: list[OutboxItem]) -> list[str]:
    """The NOTIFY payloads announcing `items`: JSON arrays, each under NOTIFY's limit."""
    messages: list[str] = []
    for item in items:
        if item.kind == "event" and "feed_seq" in item.payload:
            inline = _compact({"kind": "event", "event": item.payload})
            if len(inline.encode()) + 2 <= NOTIFY_LIMIT:
                messages.append(inline)
            else:
                messages.append(
                    _compact(
                        {
                            "kind": "event",
                            "feed_seq": item.payload["feed_seq"],
                            "deal_id": item.deal_id,
                        }
                    )
                )
        elif item.kind == "notification" and item.payload.get("user_id"):
            messages.append(_compact({"kind": "notification", "user_id": item.payload["user_id"]}))
        elif item.kind == "unread":
            messages.append(
                _compact(
                    {
                        "kind": "unread",
                        "user_id": item.payload["user_id"],
                        "unread_count": item.payload["unread_count"],
                    }
                )
            )
    payloads: list[str] = []
    batch: list[str] = []
    size = 2
    for message in messages:
        n = len(message.encode()) + 1
        if batch and size + n > NOTIFY_LIMIT:
            payloads.append("[" + ",".join(batch) + "]")
            batch, size = [], 2
        batch.append(message)
        size += n
    if batch:
        payloads.append("[" + ",".join(batch) + "]")
    return payloads


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class PostgresBroker(RealtimeBroker):
    """Many API processes: NOTIFY after commit; each process's listener feeds its hub."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        url = hub.db.engine.url.set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        #: Set while the listener holds a connection that is listening.
        self.listening = threading.Event()
        self.notifies_sent = 0
        self.notifies_heard = 0

    def announce(self, session: Session, items: list[OutboxItem]) -> None:
        """NOTIFY inside the move's transaction: PostgreSQL delivers it with the COMMIT and
        drops it on rollback, so nothing uncommitted is ever announced and nothing
        committed goes unannounced, at no extra round trip or connection."""
        payloads = notify_payloads(items)
        if not payloads:
            return
        sql = "SELECT " + ", ".join(["pg_notify(%s, %s)"] * len(payloads))
        params: list[str] = []
        for p in payloads:
            params += [CHANNEL, p]
        session.connection().exec_driver_sql(sql, tuple(params))
        self.notifies_sent += len(payloads)

    def start(self) -> None:
        super().start()
        # Streams are only as live as the listener; give it a moment to be listening.
        self.listening.wait(timeout=10)

    def stop(self) -> None:
        self._stop.set()
        if self.listening.is_set():
            # Wake the listener now rather than at its next timeout (an empty payload).
            with contextlib.suppress(Exception), self.hub.db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("SELECT pg_notify(%s, '[]')", (CHANNEL,))
        super().stop()

    def _run(self) -> None:
        backoff = 0.1
        first = True
        poll = self.hub.settings.poll_seconds
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever was announced before LISTEN took effect is in the tails.
                    self._catch_up()
                    if not first:
                        self.hub.resync_all()
                    first = False
                    self.listening.set()
                    backoff = 0.1
                    polled = time.monotonic()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=min(0.5, poll)):
                            if self._stop.is_set():
                                break
                            self.notifies_heard += 1
                            self._handle(note.payload)
                        if time.monotonic() - polled >= poll:
                            self._catch_up()
                            polled = time.monotonic()
            except Exception:
                self.listening.clear()
                if self._stop.is_set():
                    break
                log.warning("realtime listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.listening.clear()

    def _catch_up(self) -> None:
        try:
            self.hub.catch_up()
        except Exception:
            log.warning("realtime: reading the tails failed", exc_info=True)

    def _handle(self, payload: str) -> None:
        try:
            messages = json.loads(payload)
            events = [x["event"] for x in messages if x["kind"] == "event" and "event" in x]
            refs = [
                int(x["feed_seq"]) for x in messages if x["kind"] == "event" and "event" not in x
            ]
            users = [str(x["user_id"]) for x in messages if x["kind"] == "notification"]
            self.hub.publish_events(events, refs)
            self.hub.publish_bell(users)
            for x in messages:
                if x["kind"] == "unread":
                    self.hub.publish_unread(str(x["user_id"]), int(x["unread_count"]))
        except Exception:
            log.exception("realtime: could not hand on a notification: %.200s", payload)


def make_broker(db: Database, settings: RealtimeSettings | None = None) -> RealtimeBroker:
    """The in-process broker on SQLite; LISTEN/NOTIFY across processes on PostgreSQL."""
    hub = Hub(db, settings)
    if db.engine.dialect.name == "postgresql":
        return PostgresBroker(hub)
    return LocalBroker(hub)
