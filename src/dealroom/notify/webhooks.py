"""Webhooks: signed POSTs of committed events to integrators' endpoints.

Endpoints are registered, listed and deleted by services/webhooks.py (the API's use
cases); here is how their deliveries are made, after commit.

Each endpoint keeps a cursor into the global event feed (`events.feed_seq`, numbered in
commit order, see services/audit/chain.py and ADR 0003). The worker's fan-out step locks one
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
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dealroom import __version__
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.timestamps import iso
from dealroom.notify import retry_at
from dealroom.services.feed import event_json
from dealroom.services.queues import Queue, claim_one, drain
from dealroom.services.uow import UnitOfWork, session_scope

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


QUEUE = Queue(
    m.WebhookDelivery,
    due=lambda now: and_(
        m.WebhookDelivery.status == "pending", m.WebhookDelivery.next_attempt_at <= now
    ),
    order=(m.WebhookDelivery.next_attempt_at, m.WebhookDelivery.feed_seq),
)


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, signed: what POSTing it takes, nothing of it read from the session."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    #: None on a 2xx.
    error: str | None
    duration_ms: int


def prepare(session: Session, d: m.WebhookDelivery, now: datetime) -> Outgoing | str:
    """Sign a claimed delivery and count the attempt; or 'cancelled' when its endpoint or
    its event is gone."""
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
    return Outgoing(hook.url, body, headers)


def post(client: httpx.Client, outgoing: Outgoing) -> Attempt:
    """POST one delivery; a 2xx is success, anything else (or no answer) an error."""
    started = time.monotonic()
    code: int | None = None
    error: str | None = None
    try:
        with client.stream(
            "POST", outgoing.url, content=outgoing.body, headers=outgoing.headers
        ) as response:
            code = response.status_code
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    return Attempt(code, error, int((time.monotonic() - started) * 1000))


def record(d: m.WebhookDelivery, outgoing: Outgoing, attempt: Attempt, now: datetime) -> str:
    """Add the attempt to the delivery's history and mark it: 'delivered', 'retrying'
    (with backoff) or 'failed' (after a day of retries)."""
    d.history = [
        *(d.history or []),
        {
            "attempt": d.attempts,
            "at": iso(now),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
        },
    ]
    d.last_status_code, d.last_error = attempt.status_code, attempt.error
    if attempt.error is None:
        d.status, d.delivered_at = "delivered", now
        return "delivered"
    again = retry_at(attempts=d.attempts, first_tried=d.created_at, now=now,
                     base=RETRY_BASE, cap=RETRY_CAP)  # fmt: skip
    if again is None:
        d.status = "failed"
        log.warning(
            "webhook delivery %s to %s failed for good: %s", d.id, outgoing.url, attempt.error
        )
        return "failed"
    d.next_attempt_at = again
    return "retrying"


def deliver_one(db: Database, now: datetime, client: httpx.Client) -> str | None:
    """Claim one due delivery, then prepare, POST and record it in the claim's transaction
    (the row stays locked while the endpoint answers). Its outcome (see `prepare` and
    `record`); None when no delivery is due."""

    def work(uow: UnitOfWork, d: m.WebhookDelivery) -> str:
        outgoing = prepare(uow.session, d, now)
        if isinstance(outgoing, str):
            return outgoing
        return record(d, outgoing, post(client, outgoing), now)

    return claim_one(db, QUEUE.claim_statement(now), work, now=now)


def run(
    db: Database, now: datetime, *, client: httpx.Client | None = None, until: float | None = None
) -> WebhookPass:
    """Fan out new events, then deliver everything due at `now`, or what the time until
    the `time.monotonic()` instant `until` allows."""
    created = fan_out(db, now)
    if not QUEUE.any_due(db, now):
        return WebhookPass(created=created)  # the common case: no HTTP client to build
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        # The first delivery goes whatever the budget: fanning out may have spent it.
        done = drain(lambda: deliver_one(db, now, client), until=until, first_free=True)
    finally:
        if own:
            client.close()
    counts = done.outcomes
    return WebhookPass(created=created, delivered=counts["delivered"],
                       retrying=counts["retrying"], failed=counts["failed"],
                       cut_short=done.cut_short)  # fmt: skip
