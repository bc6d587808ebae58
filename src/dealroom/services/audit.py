"""The per-deal hash chain: append, verify, export.

`hash = SHA-256(prev_hash + canonical JSON of the event)`, where the canonical JSON holds
every recorded field of the event except the hashes, with sorted keys and no spaces. The
first event's `prev_hash` is 64 zeros. Appending happens under the deal's row lock (the
per-deal `seq` and `head_hash` live on the deal row); the global feed position is taken
under a transaction-scoped lock so that the feed is numbered in commit order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dealroom.db.models import Deal, Event

GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock that orders the global feed.
FEED_LOCK = 0x6465616C  # "deal"


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hashed_fields(e: Event) -> dict[str, Any]:
    return {
        "deal_id": e.deal_id,
        "seq": e.seq,
        "type": e.type,
        "actor_id": e.actor_id,
        "actor_type": e.actor_type,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "payload": e.payload,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "created_at": iso(e.created_at),
    }


def event_hash(prev_hash: str, e: Event) -> str:
    return hashlib.sha256((prev_hash + canonical(hashed_fields(e))).encode()).hexdigest()


def lock_feed(session: Session) -> None:
    """Hold the feed lock until commit (PostgreSQL; SQLite's write lock already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FEED_LOCK})


def next_feed_seq(session: Session) -> int:
    """The next global feed position, in commit order.

    On PostgreSQL a transaction-scoped advisory lock is taken first and held to commit, so a
    transaction that numbers its events later also commits later: a reader resuming
    "after N" never misses an event that got a smaller number but committed after it. On
    SQLite the write lock taken by BEGIN IMMEDIATE gives the same guarantee.
    """
    lock_feed(session)
    current = session.execute(select(func.coalesce(func.max(Event.feed_seq), 0))).scalar_one()
    return int(current) + 1


def append(
    session: Session,
    deal: Deal,
    *,
    type: str,
    actor_id: str | None,
    actor_type: str,
    from_state: str | None,
    to_state: str | None,
    payload: dict[str, Any],
    now: datetime,
    ip: str | None,
    user_agent: str | None,
    feed_seq: int,
) -> Event:
    """Append one event to the deal's chain. The caller holds the deal row lock."""
    seq = deal.last_seq + 1
    prev = deal.head_hash or GENESIS
    e = Event(
        deal_id=deal.id,
        seq=seq,
        feed_seq=feed_seq,
        type=type,
        actor_id=actor_id,
        actor_type=actor_type,
        from_state=from_state,
        to_state=to_state,
        payload=json.loads(canonical(payload)),
        ip=ip,
        user_agent=user_agent,
        created_at=now,
        prev_hash=prev,
    )
    e.hash = event_hash(prev, e)
    deal.last_seq = seq
    deal.head_hash = e.hash
    session.add(e)
    return e


@dataclass(frozen=True)
class Verification:
    valid: bool
    events: int
    head_hash: str | None
    first_bad_seq: int | None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "events": self.events,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


def verify_chain(events: Iterable[Event], *, expected_head: str | None = None) -> Verification:
    """Recompute the chain; name the first sequence whose link or hash is wrong."""
    prev = GENESIS
    count = 0
    for e in events:
        count += 1
        if e.seq != count:
            return Verification(False, count, None, e.seq, f"sequence {count} is missing")
        if e.prev_hash != prev:
            return Verification(False, count, None, e.seq, "prev_hash does not link")
        if event_hash(prev, e) != e.hash:
            return Verification(False, count, None, e.seq, "hash does not match the event")
        prev = e.hash
    if expected_head is not None and prev != expected_head:
        # Also when no event is left at all: the deal row still names the head it reached.
        return Verification(
            False, count, prev if count else None, count + 1, "events after the head were removed"
        )
    return Verification(True, count, prev if count else None, None)


def deal_events(session: Session, deal_id: str, *, after: int = 0) -> Generator[Event, None, None]:
    stmt = (
        select(Event)
        .where(Event.deal_id == deal_id, Event.seq > after)
        .order_by(Event.seq)
        .execution_options(yield_per=1000)
    )
    result = session.scalars(stmt)
    try:
        yield from result
    finally:
        # A reader that stops early (a broken chain) must not leave a server cursor open.
        result.close()


def verify_deal(session: Session, deal: Deal) -> Verification:
    events = deal_events(session, deal.id)
    try:
        return verify_chain(events, expected_head=deal.head_hash)
    finally:
        events.close()


def event_json(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "type": e.type,
        "deal_id": e.deal_id,
        "actor_id": e.actor_id,
        "actor_type": e.actor_type,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "payload": e.payload,
        "created_at": iso(e.created_at),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "feed_seq": e.feed_seq,
    }


CSV_COLUMNS = (
    "seq", "created_at", "type", "actor_type", "actor_id", "from_state", "to_state",
    "payload", "ip", "user_agent", "prev_hash", "hash",
)  # fmt: skip


def export_json(deal: Deal, events: Iterable[Event], verification: Verification) -> Iterator[str]:
    """Stream the trail as one JSON document: the deal, the events, the verification."""
    head = {"deal_id": deal.id, "ref": deal.ref, "process": deal.process_name,
            "state": deal.state, "exported_verification": verification.to_json()}  # fmt: skip
    yield canonical(head)[:-1] + ',"events":['
    first = True
    for e in events:
        yield ("" if first else ",") + canonical(
            {**event_json(e), "ip": e.ip, "user_agent": e.user_agent}
        )
        first = False
    yield "]}\n"


def export_csv(events: Iterable[Event]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for e in events:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [e.seq, iso(e.created_at), e.type, e.actor_type, e.actor_id or "", e.from_state or "",
             e.to_state or "", canonical(e.payload), e.ip or "", e.user_agent or "", e.prev_hash,
             e.hash]
        )  # fmt: skip
        yield buf.getvalue()
