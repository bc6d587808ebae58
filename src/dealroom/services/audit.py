"""The per-deal hash chain: append, verify, export.

`hash = SHA-256(prev_hash + canonical JSON of the event)`, where the canonical JSON holds
every recorded field of the event except the hashes, with sorted keys and no spaces. The
first event's `prev_hash` is 64 zeros. Appending happens under the deal's row lock (the
per-deal `seq` and `head_hash` live on the deal row).

The global feed position (`feed_seq`) is given at the last moment: `append` only chains an
event and holds it back; just before the transaction commits, `number_feed` takes the feed
lock (a transaction-scoped advisory lock on PostgreSQL; SQLite's write lock already orders
writers), numbers the held events after the current maximum and inserts them, with the bell
items and emails held with them (`hold`), so that their ids too follow commit order. The
lock is therefore held for a few inserts and the COMMIT, not for the whole request: a
reader resuming "after N" still never misses an event that committed later with a smaller
number (ADR 0003).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from dealroom.db.models import Deal, Event
from dealroom.domain.timestamps import iso

GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock that orders the global feed.
FEED_LOCK = 0x6465616C  # "deal"


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


_LOCK_FEED = text("SELECT pg_advisory_xact_lock(:k)")
_FEED_HEAD = select(func.coalesce(func.max(Event.feed_seq), 0))


def lock_feed(session: Session) -> None:
    """Hold the feed lock until commit (PostgreSQL; SQLite's write lock already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_FEED, {"k": FEED_LOCK})


@dataclass
class _Held:
    """What a transaction holds back until its commit: events, their published JSON, rows."""

    events: list[Event] = field(default_factory=list)
    payloads: list[tuple[Event, dict[str, Any]]] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)


_HELD = "dealroom.feed"


def _held(session: Session) -> _Held:
    held = session.info.get(_HELD)
    if held is None:
        held = session.info[_HELD] = _Held()
    return held


def hold(session: Session, *rows: Any) -> None:
    """Insert `rows` at commit, under the feed lock, after this transaction's events (bell
    items, which the live streams resume by id, and the emails that point at them)."""
    _held(session).rows.extend(rows)


def published(session: Session, e: Event) -> dict[str, Any]:
    """The event's JSON for the outbox; its `feed_seq` is filled in when it is numbered."""
    payload = event_json(e)
    _held(session).payloads.append((e, payload))
    return payload


def number_feed(session: Session) -> None:
    """Number and write what this transaction held back: the first step of the commit path
    (`services.uow.UnitOfWork.commit`)."""
    held = session.info.pop(_HELD, None)
    if held is None or not (held.events or held.rows):
        return
    if held.events:
        _insert_numbered(session, held.events)  # first: a held row may point at its event
        for e, payload in held.payloads:
            payload["feed_seq"] = e.feed_seq
    else:
        lock_feed(session)
    insert_rows(session, held.rows)


def _insert_numbered(session: Session, events: list[Event]) -> None:
    """Insert `events` numbered after the feed's head, holding the feed lock to commit."""
    dialect = session.get_bind().dialect
    lock_feed(session)
    if dialect.name == "postgresql" and len(events) <= dialect.insertmanyvalues_page_size:
        # Each row is numbered after the head as this one statement sees it: its snapshot
        # is taken once the lock is granted (READ COMMITTED), and it does not see its own
        # rows. One round trip instead of reading the head first. (More rows than one
        # statement carries would be numbered per statement: those take the path below.)
        rows = [{**column_values(e), "feed_offset": i} for i, e in enumerate(events, start=1)]
        numbers = session.execute(_INSERT_NUMBERED, rows).scalars().all()
        for e, number in zip(events, numbers, strict=True):
            e.feed_seq = number
        return
    # SQLite (its write lock orders writers) may insert the rows one at a time, each seeing
    # the one before, so the numbers are worked out first.
    current = session.execute(_FEED_HEAD).scalar_one()
    for i, e in enumerate(events, start=int(current) + 1):
        e.feed_seq = i
    session.execute(insert(_EVENTS), [column_values(e) for e in events])


_EVENTS = cast(Table, Event.__table__)
_INSERT_NUMBERED = (
    insert(_EVENTS)
    .values(feed_seq=_FEED_HEAD.scalar_subquery() + bindparam("feed_offset"))
    .returning(_EVENTS.c.feed_seq, sort_by_parameter_order=True)
)


def column_values(obj: Any) -> dict[str, Any]:
    """The column values set on a new ORM object; the table's defaults fill the others."""
    state = inspect(obj)
    for rel in state.mapper.relationships:
        # A row held after the row it points at (an email after its bell item): take the
        # key that row was given when it was inserted.
        target = state.dict.get(rel.key)
        if target is not None:
            for local, remote in rel.local_remote_pairs:
                setattr(obj, local.key, getattr(target, remote.key))
    values = state.dict
    return {a.key: values[a.key] for a in state.mapper.column_attrs if a.key in values}


def insert_rows(session: Session, rows: list[Any]) -> None:
    """Insert new ORM objects with Core, in their order (one statement per run of one table
    and the same columns), without the unit of work: the objects are not added to the
    session. Generated primary keys are set back on the objects."""
    i = 0
    while i < len(rows):
        first = column_values(rows[i])
        run = [first]
        j = i + 1
        while j < len(rows) and type(rows[j]) is type(rows[i]):
            values = column_values(rows[j])
            if values.keys() != first.keys():
                break
            run.append(values)
            j += 1
        table = cast(Table, inspect(type(rows[i])).local_table)
        generated = [c for c in table.primary_key.columns if c.key not in first]
        stmt = insert(table)
        if generated:
            keys = session.execute(
                stmt.returning(*generated, sort_by_parameter_order=True), run
            ).all()
            for obj, key in zip(rows[i:j], keys, strict=True):
                for column, value in zip(generated, key, strict=True):
                    setattr(obj, column.key, value)
        else:
            session.execute(stmt, run)
        i = j


def forget_held(session: Session) -> None:
    """Drop what the transaction held back (it rolls back: nothing of it is written)."""
    session.info.pop(_HELD, None)


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
    _held(session).events.append(e)
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
