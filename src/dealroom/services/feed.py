"""The global event feed as a reader sees it: its newest position, and the events after a
position that a user may see (a party its deals' events; staff every event). Positions
(`feed_seq`) follow commit order (services/audit.py), so reading on from the last one
seen never skips an event."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.services.accounts import is_staff

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
