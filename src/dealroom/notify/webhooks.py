"""Webhooks: signed POSTs of committed events to integrators' endpoints.

Endpoints are registered, listed and deleted by services/webhooks.py (the API's use
cases); here is how their deliveries are made, after commit.

Each endpoint keeps a cursor into the global event feed (`events.feed_seq`, numbered in
commit order, see services/audit.py and ADR 0003). The worker's fan-out step locks one
endpoint (`FOR UPDATE SKIP LOCKED`), reads the events after its cursor, inserts a
`webhook_deliveries` row for each that its filter matches and moves the cursor, all in
one transaction. Reading the feed rather than hooking the deal service keeps every
writer of events (moves, messages, timers, whatever comes next) covered without touching
it, adds nothing to the request path while the feed lock is held, and the unique
(webhook, feed_seq) key makes a second delivery of one event to one endpoint impossible.
Because the feed never skips a number that commits late, resuming after the cursor loses
nothing. A new endpoint starts at the head of the feed: it gets what happens after it
was created, not the history (that is what `GET /v1/events` is for).

Then each due delivery is claimed with `FOR UPDATE SKIP LOCKED`, POSTed with the row
locked (httpx, 10 s timeout, no redirects) and marked in the same transaction: delivered
on a 2xx, else retried with exponential backoff (30 s doubling, at most 3 h apart) for a
day from the first attempt, then `failed`. Every attempt is kept in `history` for the
delivery log.

The body is the event as API.md shapes it (the same JSON as `GET /v1/events`), and
`Dealroom-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
signs it; docs/webhooks.md tells receivers how to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealroom import __version__
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.notify import retry_at
from dealroom.services.audit import event_json, iso
from dealroom.services.uow import session_scope

log = logging.getLogger("dealroom.webhooks")

TIMEOUT = 10.0
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=3)
FAN_OUT_BATCH = 500
SIGNATURE_HEADER = "Dealroom-Signature"


# --- signing ------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Dealroom-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def body_of(e: m.Event) -> bytes:
    return json.dumps(event_json(e), separators=(",", ":"), ensure_ascii=False).encode()


def matches(filters: list[str], event_type: str) -> bool:
    return "*" in filters or event_type in filters


# --- fan-out (worker) ---------------------------------------------------------------------


def _fan_out_one(db: Database, webhook_id: str, now: datetime) -> tuple[int, bool]:
    """Turn one batch of new events into deliveries for one endpoint. Returns how many
    deliveries were made and whether more events may follow."""
    with session_scope(db) as s:
        hook = s.execute(
            select(m.Webhook)
            .where(m.Webhook.id == webhook_id, m.Webhook.deleted_at.is_(None))
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if hook is None:
            return 0, False  # gone, or another worker is on it
        rows = s.execute(
            select(m.Event.feed_seq, m.Event.type, m.Event.deal_id)
            .where(m.Event.feed_seq > hook.feed_cursor)
            .order_by(m.Event.feed_seq)
            .limit(FAN_OUT_BATCH)
        ).all()
        if not rows:
            return 0, False
        made = 0
        for feed_seq, event_type, deal_id in rows:
            if matches(hook.events, event_type):
                s.add(
                    m.WebhookDelivery(
                        webhook_id=hook.id, deal_id=deal_id, feed_seq=feed_seq,
                        event_type=event_type, status="pending", attempts=0,
                        next_attempt_at=now, history=[], created_at=now,
                    )
                )  # fmt: skip
                made += 1
        hook.feed_cursor = rows[-1].feed_seq
        return made, len(rows) == FAN_OUT_BATCH


def fan_out(db: Database, now: datetime) -> int:
    """Make deliveries for every endpoint from the events committed since its cursor."""
    with session_scope(db, write=False) as s:
        head = s.scalar(select(func.coalesce(func.max(m.Event.feed_seq), 0)))
        ids = list(
            s.scalars(
                select(m.Webhook.id).where(
                    m.Webhook.deleted_at.is_(None), m.Webhook.feed_cursor < head
                )
            )
        )
    made = 0
    for webhook_id in ids:
        more = True
        while more:
            n, more = _fan_out_one(db, webhook_id, now)
            made += n
    return made


# --- delivering (worker) ------------------------------------------------------------------


@dataclass
class WebhookPass:
    created: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    #: Stopped at its time budget with deliveries still due.
    cut_short: bool = False


def _claim(session: Session, now: datetime) -> m.WebhookDelivery | None:
    stmt = (
        select(m.WebhookDelivery)
        .where(m.WebhookDelivery.status == "pending", m.WebhookDelivery.next_attempt_at <= now)
        .order_by(m.WebhookDelivery.next_attempt_at, m.WebhookDelivery.feed_seq)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def deliver_one(db: Database, now: datetime, client: httpx.Client) -> str:
    """Claim, POST and mark one due delivery in one transaction. Returns 'delivered',
    'retrying', 'failed', 'cancelled' or 'none'."""
    with session_scope(db) as session:
        d = _claim(session, now)
        if d is None:
            # it only read: the commit keeps the prepared statements (db/session.py)
            return "none"
        hook = session.get(m.Webhook, d.webhook_id)
        event = session.scalar(select(m.Event).where(m.Event.feed_seq == d.feed_seq))
        if hook is None or hook.deleted_at is not None or event is None:
            d.status = "cancelled"
            return "cancelled"
        body = body_of(event)
        stamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"dealroom-webhooks/{__version__}",
            SIGNATURE_HEADER: sign(hook.secret, stamp, body),
            "Dealroom-Event": event.type,
            "Dealroom-Delivery": d.id,
        }
        d.attempts += 1
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            with client.stream("POST", hook.url, content=body, headers=headers) as response:
                code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        attempt = {
            "attempt": d.attempts,
            "at": iso(now),
            "status_code": code,
            "error": error,
            "duration_ms": int((time.monotonic() - started) * 1000),
        }
        d.history = [*(d.history or []), attempt]
        d.last_status_code, d.last_error = code, error
        if error is None:
            d.status, d.delivered_at = "delivered", now
            outcome = "delivered"
        else:
            again = retry_at(attempts=d.attempts, first_tried=d.created_at, now=now,
                             base=RETRY_BASE, cap=RETRY_CAP)  # fmt: skip
            if again is None:
                d.status, outcome = "failed", "failed"
                log.warning("webhook delivery %s to %s failed for good: %s", d.id, hook.url, error)
            else:
                d.next_attempt_at, outcome = again, "retrying"
        return outcome


def run(
    db: Database, now: datetime, *, client: httpx.Client | None = None, until: float | None = None
) -> WebhookPass:
    """Fan out new events, then deliver everything due at `now`, or what the time until
    the `time.monotonic()` instant `until` allows."""
    result = WebhookPass(created=fan_out(db, now))
    with session_scope(db, write=False) as s:
        due = s.scalar(
            select(m.WebhookDelivery.id)
            .where(m.WebhookDelivery.status == "pending", m.WebhookDelivery.next_attempt_at <= now)
            .limit(1)
        )
    if due is None:
        return result  # the common case: no HTTP client to build
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        while (outcome := deliver_one(db, now, client)) != "none":
            if outcome != "cancelled":
                setattr(result, outcome, getattr(result, outcome) + 1)
            if until is not None and time.monotonic() >= until:
                result.cut_short = True
                break
    finally:
        if own:
            client.close()
    return result
