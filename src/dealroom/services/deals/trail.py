"""A deal's audit trail as its readers get it: its events after a `seq`, the last `seq`,
and the whole trail as a file. The chain itself (append, verify, the export formats) is
`services.audit`'s."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.audit import chain, exports
from dealroom.services.uow import session_scope


def events_after(session: Session, deal_id: str, *, after: int, limit: int) -> list[m.Event]:
    """The deal's events after `seq` `after`, in order, `limit` at most."""
    stmt = (
        select(m.Event)
        .where(m.Event.deal_id == deal_id, m.Event.seq > after)
        .order_by(m.Event.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def last_seq(session: Session, deal_id: str) -> int:
    return int(session.execute(select(m.Deal.last_seq).where(m.Deal.id == deal_id)).scalar_one())


def export(db: Database, deal_id: str, fmt: str) -> Iterator[str]:
    """The trail as `fmt` (json, csv), read in a session of its own: a streamed answer
    outlives the request's unit of work."""
    with session_scope(db, write=False) as s:
        if not db.is_sqlite:
            # The verification and the events come from one snapshot.
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        deal = s.get(m.Deal, deal_id)
        if deal is None:
            return
        if fmt == "csv":
            yield from exports.export_csv(chain.deal_events(s, deal_id))
        else:
            verification = chain.verify_deal(s, deal)
            yield from exports.export_json(deal, chain.deal_events(s, deal_id), verification)
