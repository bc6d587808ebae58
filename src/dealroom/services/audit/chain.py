"""The per-deal hash chain: append and verify.

`hash = SHA-256(prev_hash + canonical JSON of the event)`, where the canonical JSON holds
every recorded field of the event except the hashes, with sorted keys and no spaces. The
first event's `prev_hash` is 64 zeros. Appending happens under the deal's row lock (the
per-deal `seq` and `head_hash` live on the deal row); the event is written at commit, when
the feed numbers it (`services/feed.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.db.models import Deal, Event
from dealroom.domain.timestamps import iso
from dealroom.services import feed

GENESIS = "0" * 64


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
) -> Event:
    """Append one event to the deal's chain. The caller holds the deal row lock.

    The event is written at commit, numbered in the global feed then (`number_feed`)."""
    seq = deal.last_seq + 1
    prev = deal.head_hash or GENESIS
    e = Event(
        deal_id=deal.id,
        seq=seq,
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
    feed.hold_event(session, e)
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
