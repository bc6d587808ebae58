"""The global event feed: one order of every event, in commit order.

Writing. The feed position (`feed_seq`) is given at the last moment: the hash chain
(`services/audit/chain.append`) only chains an event and holds it back; the commit path
(`services/uow.py`) then calls `number_feed`, which takes the feed lock (a
transaction-scoped advisory lock on PostgreSQL; SQLite's write lock already orders
writers), numbers the held events after the current maximum and inserts them, with the bell
items and emails held with them (`hold`), so that their ids too follow commit order. The
lock is therefore held for a few inserts and the COMMIT, not for the whole request: a
reader resuming "after N" still never misses an event that committed later with a smaller
number (ADR 0003).

Reading. Its newest position, and the events after a position that a user may see (a
party its deals' events; staff every event): reading on from the last position seen never
skips an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, inspect, or_, select, text
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.db.models import Event
from dealroom.domain.timestamps import iso
from dealroom.services.accounts import is_staff

#: Key of the PostgreSQL advisory lock that orders the global feed.
FEED_LOCK = 0x6465616C  # "deal"


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


def hold_event(session: Session, e: Event) -> None:
    """Hold a chained event back until the commit numbers it (`number_feed`)."""
    _held(session).events.append(e)


# --- reading -------------------------------------------------------------------------------


_HEAD = select(func.coalesce(func.max(m.Event.feed_seq), 0))


def head(session: Session) -> int:
    """The newest feed position (0 before the first event)."""
    return int(session.execute(_HEAD).scalar_one())


def events_after(
    session: Session, after: int, *, limit: int, party_id: str | None
) -> list[m.Event]:
    """Events after feed position `after`, oldest first, `limit` at most: those of the
    deals `party_id` is a party to, or every event when `party_id` is None (staff)."""
    stmt = select(m.Event).where(m.Event.feed_seq > after)
    if party_id is not None:
        stmt = stmt.join(m.Deal, m.Deal.id == m.Event.deal_id).where(
            or_(m.Deal.buyer_id == party_id, m.Deal.seller_id == party_id)
        )
    return list(session.scalars(stmt.order_by(m.Event.feed_seq).limit(limit)))


def events_for(session: Session, user: m.User, after: int, *, limit: int) -> list[m.Event]:
    """`events_after` as `user` may see them."""
    party_id = None if is_staff(user) else user.id
    return events_after(session, after, limit=limit, party_id=party_id)
