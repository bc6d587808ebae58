"""Brokers: how committed items reach the hubs of every API process.

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

import contextlib
import json
import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from dealroom.db.session import Database
from dealroom.realtime.hub import NOTIFY_LIMIT, Hub, RealtimeSettings
from dealroom.services.outbox import Broker, OutboxItem

log = logging.getLogger("dealroom.realtime")

CHANNEL = "dealroom"


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
