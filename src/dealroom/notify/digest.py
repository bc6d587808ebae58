"""The morning digest: one email a day with what happened quietly on the user's deals.

A user who chose `digest` gets, at their digest hour in their own timezone, a summary
grouped per deal ("12 updates on DEAL-2026-0042: 3 counter-offers, 9 messages; latest
47.00 SAR") instead of one email per move.

When: `user_preferences.next_digest_at` holds the next instant the user's local clock
reads the digest hour (services/preferences.py keeps that schedule). The worker claims
due rows with `FOR UPDATE SKIP LOCKED`, composes the digest and sets the next instant
after now in the same transaction: a worker that was down for three days sends one
digest, not three. Queued emails are unique per user and local date, so there is never
a second digest on one day, not even after the user moves their digest hour.

What: bell items not read, not seen live (`notifications.seen_live_at`, stamped when an
open stream pushed them), not already emailed, and in no earlier digest (`digest_items` is
keyed by the notification). Reminders that are push-only (email_queue.BELL_ONLY) stay on the
bell. A day with nothing quiet sends nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.notify.render import deal_view, listing_view, money, party
from dealroom.services.notifications.email_queue import BELL_ONLY, new_message_id
from dealroom.services.notifications.preferences import last_slot, next_slot, zone
from dealroom.services.queues import Queue, claim_one, drain
from dealroom.services.uow import UnitOfWork

#: At most this many bell items go into one digest (the rest wait for the next one).
MAX_ITEMS = 2000

#: (keywords, singular, plural): a bell item counts under the first category with a
#: keyword in its name; any move whose transition is a counter counts as a counter-offer.
CATEGORIES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("counter",), "counter-offer", "counter-offers"),
    (("message",), "message", "messages"),
    (("remind",), "reminder", "reminders"),
    (("accept",), "acceptance", "acceptances"),
    (("reject", "declin"), "rejection", "rejections"),
    (("withdraw",), "withdrawal", "withdrawals"),
    (("expir", "timeout", "cancel"), "expiry or cancellation", "expiries and cancellations"),
    (("rfq", "quote-request"), "request", "requests"),
    (("quote", "offer"), "offer", "offers"),
    (("deliver", "change"), "delivery update", "delivery updates"),
    (("review",), "review", "reviews"),
)
OTHER = ("other update", "other updates")


# --- composing ----------------------------------------------------------------------------


def quiet_items(session: Session, pref: m.UserPreference, now: datetime) -> list[m.Notification]:
    """What the digest should tell: unread, not seen live, never emailed, in no digest."""
    n = m.Notification
    stmt = select(n).where(
        n.user_id == pref.user_id,
        n.read_at.is_(None),
        n.seen_live_at.is_(None),
        n.created_at <= now,
        n.name.not_in(BELL_ONLY),
        ~exists().where(m.DigestItem.notification_id == n.id),
        ~exists().where(m.QueuedEmail.notification_id == n.id),
    )
    if pref.digest_from is not None:
        stmt = stmt.where(n.created_at >= pref.digest_from)
    return list(session.scalars(stmt.order_by(n.created_at, n.id).limit(MAX_ITEMS)))


QUEUE = Queue(
    m.UserPreference,
    due=lambda now: and_(
        m.UserPreference.email == "digest", m.UserPreference.next_digest_at <= now
    ),
    order=(m.UserPreference.next_digest_at, m.UserPreference.user_id),
)


def compose(session: Session, config: Config, pref: m.UserPreference, now: datetime) -> str:
    """Queue the digest of a claimed user whose digest is due and schedule their next one.
    Returns 'queued', or 'empty' when there is nothing quiet to tell (or today's went)."""
    tz = zone(pref.timezone)
    _, day = last_slot(now, tz, pref.digest_hour)
    pref.next_digest_at = next_slot(now, tz, pref.digest_hour)
    already = session.scalar(
        select(m.QueuedEmail.id).where(
            m.QueuedEmail.user_id == pref.user_id, m.QueuedEmail.digest_date == day
        )
    )
    items = [] if already is not None else quiet_items(session, pref, now)
    if not items:
        return "empty"
    email = m.QueuedEmail(
        user_id=pref.user_id,
        kind="digest",
        digest_date=day,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        message_id=new_message_id(config),
        created_at=now,
    )
    session.add(email)
    session.flush()
    session.add_all(
        m.DigestItem(notification_id=n.id, email_id=email.id, deal_id=n.deal_id) for n in items
    )
    return "queued"


def compose_one(db: Database, config: Config, now: datetime) -> str | None:
    """Claim one user whose digest is due and compose it in the claim's transaction:
    'queued' or 'empty'; None when no digest is due."""

    def work(uow: UnitOfWork, pref: m.UserPreference) -> str:
        return compose(uow.session, config, pref, now)

    return claim_one(db, QUEUE.claim_statement(now), work, config=config, now=now)


def compose_due(db: Database, config: Config, now: datetime) -> int:
    """Queue every digest due at `now`; the email pass sends them."""
    if not QUEUE.any_due(db, now):
        return 0
    return drain(lambda: compose_one(db, config, now)).outcomes["queued"]


# --- what the digest says -----------------------------------------------------------------


def category(n: m.Notification) -> tuple[str, str]:
    if "counter" in str((n.payload or {}).get("transition") or ""):
        return CATEGORIES[0][1], CATEGORIES[0][2]
    for keywords, one, many in CATEGORIES:
        if any(k in n.name for k in keywords):
            return one, many
    return OTHER


def summarize(items: list[m.Notification]) -> str:
    """'3 counter-offers, 9 messages', in the order of CATEGORIES."""
    counts = Counter(category(n) for n in items)
    order = [(one, many) for _, one, many in CATEGORIES] + [OTHER]
    parts = [f"{counts[c]} {c[0] if counts[c] == 1 else c[1]}" for c in order if counts[c]]
    return ", ".join(parts)


def _latest_price(session: Session, deal_id: str, at: datetime) -> str | None:
    q = session.scalar(
        select(m.QuoteVersion)
        .where(m.QuoteVersion.deal_id == deal_id, m.QuoteVersion.created_at <= at)
        .order_by(m.QuoteVersion.number.desc())
        .limit(1)
    )
    return None if q is None else money(q.unit_price, q.currency)


def digest_context(
    session: Session, config: Config, row: m.QueuedEmail, user: m.User, tz: ZoneInfo
) -> tuple[str, dict[str, Any]] | None:
    items = list(
        session.scalars(
            select(m.Notification)
            .join(m.DigestItem, m.DigestItem.notification_id == m.Notification.id)
            .where(m.DigestItem.email_id == row.id)
            .order_by(m.Notification.created_at, m.Notification.id)
        )
    )
    by_deal: dict[str | None, list[m.Notification]] = {}
    for n in items:
        by_deal.setdefault(n.deal_id, []).append(n)
    deals: list[dict[str, Any]] = []
    for deal_id, group in by_deal.items():
        deal = session.get(m.Deal, deal_id) if deal_id else None
        if deal is None:
            continue
        latest = _latest_price(session, deal.id, row.created_at)
        count = len(group)
        summary = f"{count} update{'' if count == 1 else 's'} on {deal.ref}: {summarize(group)}"
        if latest:
            summary += f"; latest {latest}"
        other_id = deal.seller_id if user.id == deal.buyer_id else deal.buyer_id
        deals.append(
            {
                "deal": deal_view(config, deal),
                "listing": listing_view(deal),
                "other": party(session.get(m.User, other_id)),
                "count": count,
                "breakdown": summarize(group),
                "latest": latest,
                "summary": summary,
                "last_at": group[-1].created_at,
            }
        )
    if not deals:
        return None
    deals.sort(key=lambda d: d["last_at"], reverse=True)
    total = sum(d["count"] for d in deals)
    day = row.digest_date or row.created_at.astimezone(tz).date()
    context = {
        "recipient": party(user),
        "deals": deals,
        "total": total,
        "day": f"{day.day} {day:%B %Y}",
        "headline": deals[0]["summary"]
        if len(deals) == 1
        else f"{total} updates on {len(deals)} deals",
        "base_url": config.base_url.rstrip("/"),
    }
    return "_digest", context
