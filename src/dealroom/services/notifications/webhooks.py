"""Webhook endpoints: registered, listed and deleted through the API, with their delivery log.

A new endpoint starts at the head of the feed: it gets the events committed after it was
created. Its deliveries are made and sent after commit by the worker (notify/webhooks.py,
which also signs them: docs/webhooks.md).
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.errors import NotFound
from dealroom.services.uow import UnitOfWork

SECRET_PREFIX = "whsec_"


def create(uow: UnitOfWork, user: m.User, *, url: str, events: list[str]) -> m.Webhook:
    """Register an endpoint; it receives events committed from now on."""
    head = uow.session.scalar(select(func.coalesce(func.max(m.Event.feed_seq), 0)))
    hook = m.Webhook(
        url=url,
        events=list(dict.fromkeys(events)),
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        created_by=user.id,
        feed_cursor=int(head or 0),
        created_at=uow.now,
    )
    uow.session.add(hook)
    uow.session.flush()
    return hook


def listed(session: Session) -> list[m.Webhook]:
    stmt = select(m.Webhook).where(m.Webhook.deleted_at.is_(None)).order_by(m.Webhook.created_at)
    return list(session.scalars(stmt))


def get(session: Session, webhook_id: str, *, lock: bool = False) -> m.Webhook:
    stmt = select(m.Webhook).where(m.Webhook.id == webhook_id, m.Webhook.deleted_at.is_(None))
    hook = (
        session.scalar(stmt.with_for_update() if lock else stmt) if len(webhook_id) <= 36 else None
    )
    if hook is None:
        raise NotFound("There is no such webhook.", rule="WEBHOOK", webhook_id=webhook_id)
    return hook


def delete(uow: UnitOfWork, webhook_id: str) -> None:
    """Stop deliveries; the endpoint and its log stay on record, out of the API. Deleting
    twice is not an error."""
    hook = (
        uow.session.get(m.Webhook, webhook_id, with_for_update=True)
        if len(webhook_id) <= 36
        else None
    )
    if hook is None:
        raise NotFound("There is no such webhook.", rule="WEBHOOK", webhook_id=webhook_id)
    if hook.deleted_at is not None:
        return
    hook.deleted_at = uow.now
    uow.session.execute(
        update(m.WebhookDelivery)
        .where(m.WebhookDelivery.webhook_id == hook.id, m.WebhookDelivery.status == "pending")
        .values(status="cancelled")
    )


def deliveries(
    session: Session,
    webhook_id: str,
    *,
    limit: int,
    before: int | None = None,
    status: str | None = None,
) -> list[m.WebhookDelivery]:
    """The delivery log, newest event first."""
    hook = get(session, webhook_id)
    stmt = select(m.WebhookDelivery).where(m.WebhookDelivery.webhook_id == hook.id)
    if before is not None:
        stmt = stmt.where(m.WebhookDelivery.feed_seq < before)
    if status is not None:
        stmt = stmt.where(m.WebhookDelivery.status == status)
    return list(session.scalars(stmt.order_by(m.WebhookDelivery.feed_seq.desc()).limit(limit)))
