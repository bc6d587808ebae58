"""Messages in a deal room: free text on the record, never a move."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.errors import InvalidRequest
from dealroom.services import cursors, feed, notifications
from dealroom.services.audit import chain
from dealroom.services.deals.read import get_deal
from dealroom.services.outbox import OutboxItem
from dealroom.services.uow import UnitOfWork

MAX_MESSAGE = 5000


def post_message(uow: UnitOfWork, user: m.User, *, deal_id: str, body: str) -> m.Message:
    """A message never changes state nor counts as a transition, but it is on the record."""
    text_ = body.strip()
    if not text_:
        raise InvalidRequest("A message needs some text.", field="body", rule="MESSAGE")
    if len(text_) > MAX_MESSAGE:
        raise InvalidRequest(
            f"A message is at most {MAX_MESSAGE} characters.", field="body", rule="MESSAGE"
        )
    deal, role = get_deal(uow.session, deal_id, user, lock=True)
    msg = m.Message(deal_id=deal.id, author_id=user.id, body=text_, created_at=uow.now)
    uow.session.add(msg)
    uow.session.flush()
    e = chain.append(
        uow.session, deal, type="MESSAGE_POSTED", actor_id=user.id, actor_type=role,
        from_state=deal.state, to_state=deal.state,
        payload={"message_id": msg.id, "body": text_},
        now=uow.now, ip=uow.ip, user_agent=uow.user_agent,
    )  # fmt: skip
    deal.updated_at = uow.now
    uow.outbox.append(OutboxItem("event", deal.id, feed.published(uow.session, e)))
    # Offer reference: "Offer Message: notify about new communications" — the other party
    # (both, when an operator writes).
    others = [r for r in ("buyer", "seller") if r != role]
    notifications.record(
        uow, deal, "message-posted", "message-posted", others, {"message_id": msg.id}
    )
    return msg


def list_messages(
    session: Session, user: m.User, *, deal_id: str, limit: int, cursor: str | None = None
) -> tuple[list[m.Message], str | None]:
    """The deal's messages, oldest first, and the cursor of the next page."""
    deal, _ = get_deal(session, deal_id, user)
    stmt = select(m.Message).where(m.Message.deal_id == deal.id)
    if cursor is not None:
        at, last_id = cursors.time_and_id(cursor)
        stmt = stmt.where(
            or_(m.Message.created_at > at, and_(m.Message.created_at == at, m.Message.id > last_id))
        )
    stmt = stmt.order_by(m.Message.created_at, m.Message.id).limit(limit + 1)
    return cursors.page(list(session.scalars(stmt)), limit, lambda x: (x.created_at, x.id))
