"""The bell: a user's bell items, read and marked read; what the live stream pushed.

Bell items (`Notification` rows, named as the API names them) are recorded by
`services.notifications` in the transaction of the move that caused them. Here they are
listed newest first with the unread count, marked read (some or all), read in id order
for `/v1/me/stream`, and stamped `seen_live_at` once pushed to an open stream of their
user, so the email digest does not repeat what was seen live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.timestamps import iso
from dealroom.services import cursors
from dealroom.services.outbox import OutboxItem
from dealroom.services.uow import UnitOfWork


def notification_json(n: m.Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "name": n.name,
        "template": n.template,
        "deal_id": n.deal_id,
        "payload": n.payload,
        "created_at": iso(n.created_at),
        "read_at": iso(n.read_at) if n.read_at else None,
        "seen_live_at": iso(n.seen_live_at) if n.seen_live_at else None,
    }


def unread_count(session: Session, user_id: str) -> int:
    stmt = select(func.count()).where(
        m.Notification.user_id == user_id, m.Notification.read_at.is_(None)
    )
    return int(session.execute(stmt).scalar_one())


@dataclass(frozen=True)
class Page:
    items: list[m.Notification]
    unread_count: int
    next_cursor: str | None


def list_notifications(
    session: Session, user: m.User, *, limit: int, cursor: str | None, unread_only: bool
) -> Page:
    """Newest first; `cursor` is the `next_cursor` of the page before."""
    stmt = select(m.Notification).where(m.Notification.user_id == user.id)
    if cursor is not None:
        stmt = stmt.where(m.Notification.id < cursors.position(cursor))
    if unread_only:
        stmt = stmt.where(m.Notification.read_at.is_(None))
    rows = list(session.scalars(stmt.order_by(m.Notification.id.desc()).limit(limit + 1)))
    page, next_cursor = cursors.page(rows, limit, lambda n: (n.id,))
    return Page(page, unread_count(session, user.id), next_cursor)


def mark_read(uow: UnitOfWork, user: m.User, *, ids: Sequence[int] | None, everything: bool) -> int:
    """Mark some (`ids`; other users' ids are ignored) or all of the caller's bell items
    read; answer the unread count. Open streams of the user get the new count."""
    stmt = (
        update(m.Notification)
        .where(m.Notification.user_id == user.id, m.Notification.read_at.is_(None))
        .values(read_at=uow.now)
    )
    if not everything:
        stmt = stmt.where(m.Notification.id.in_(list(ids or [])))
    uow.session.execute(stmt)
    count = unread_count(uow.session, user.id)
    uow.outbox.append(OutboxItem("unread", None, {"user_id": user.id, "unread_count": count}))
    return count


# --- for the live stream --------------------------------------------------------------------


def head(session: Session, user_id: str) -> int:
    """The user's newest bell item's id (0 when none)."""
    stmt = select(func.coalesce(func.max(m.Notification.id), 0)).where(
        m.Notification.user_id == user_id
    )
    return int(session.execute(stmt).scalar_one())


def after(session: Session, user_id: str, after_id: int, *, limit: int) -> list[m.Notification]:
    """The user's bell items after id `after_id`, oldest first."""
    stmt = (
        select(m.Notification)
        .where(m.Notification.user_id == user_id, m.Notification.id > after_id)
        .order_by(m.Notification.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def mark_seen_live(session: Session, ids: Sequence[int], now: datetime) -> None:
    """These were pushed to an open stream of their user; the first push counts."""
    if not ids:
        return
    session.execute(
        update(m.Notification)
        .where(m.Notification.id.in_(list(ids)), m.Notification.seen_live_at.is_(None))
        .values(seen_live_at=now)
    )
