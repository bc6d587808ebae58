"""Sending queued email: the worker renders each due email and hands it to a transport.

Emails are queued with the move that caused them (services/email_queue.py) or by the
digest pass (digest.py). The worker claims due rows with `FOR UPDATE SKIP LOCKED` and
sends each in its own transaction, holding the row lock while it talks to the SMTP
server, then marks it sent with its Message-ID. A crash before that commit leaves the row
pending (the one way a mail can go twice: at-least-once, never twice by two workers). On
SQLite the claim is the database's write lock, so a slow SMTP server holds up writers for
as long as the send takes, at most the 10 s timeout: point embedded mode at a local
relay, or at the folder (transports.py). A transient failure is retried with backoff for
a day; a permanent refusal (5xx) fails the row at once.
"""

from __future__ import annotations

import logging
import re
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from sqlalchemy import and_
from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.notify import retry_at
from dealroom.notify.digest import digest_context
from dealroom.notify.render import Rendered, notification_context, render
from dealroom.notify.transports import Transport, TransportDown, transport_for
from dealroom.services.notifications.preferences import user_zone
from dealroom.services.queues import Queue, claim_one, drain
from dealroom.services.uow import UnitOfWork

log = logging.getLogger("dealroom.email")

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
#: Python's folding at 78 columns splits a subject that starts with "[DEAL-…]" right after
#: "Subject:", which some readers show with a leading space; headers stay under RFC
#: 5322's hard limit of 998 instead (subjects are cut at 400).
MAIL_POLICY = policy.default.clone(max_line_length=998)


# --- rendering a queued email -------------------------------------------------------------


def render_row(session: Session, config: Config, row: m.QueuedEmail) -> Rendered | None:
    """Render one queued email; None when there is nothing to send any more (the user or
    the deal is gone, a digest whose items all vanished)."""
    user = session.get(m.User, row.user_id)
    if user is None or user.deleted_at is not None or not user.email:
        return None
    tz = user_zone(session, user)
    if row.kind == "digest":
        found = digest_context(session, config, row, user, tz)
    else:
        found = notification_context(session, config, row, user, tz)
    if found is None:
        return None
    template, context = found
    return render(template, context, to=formataddr((" ".join(user.name.split()), user.email)))


def build_message(config: Config, message_id: str, r: Rendered, now: datetime) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = r.subject
    msg["From"] = config.email_from
    msg["To"] = r.to
    msg["Date"] = formatdate(now.timestamp(), usegmt=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    if r.deal_ref:
        msg["X-Dealroom-Deal"] = r.deal_ref
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    return msg


# --- the send pass (worker) ---------------------------------------------------------------


@dataclass
class EmailPass:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    #: Stopped at its time budget with emails still due (the worker comes back at once).
    cut_short: bool = False


QUEUE = Queue(
    m.QueuedEmail,
    due=lambda now: and_(m.QueuedEmail.status == "pending", m.QueuedEmail.next_attempt_at <= now),
    order=(m.QueuedEmail.next_attempt_at, m.QueuedEmail.id),
)


@dataclass(frozen=True)
class Outgoing:
    """A claimed email, rendered: what sending it takes, nothing of it read from the session."""

    rendered: Rendered
    message_id: str
    file_name: str


def prepare(session: Session, config: Config, row: m.QueuedEmail, now: datetime) -> Outgoing | str:
    """Render a claimed email and count the attempt; or, when there is nothing to send,
    the row's outcome: 'failed' (a template or data bug) or 'skipped' (see render_row)."""
    try:
        rendered = render_row(session, config, row)
    except Exception as exc:  # a template or data bug: retrying will not help
        log.exception("email %s could not be rendered", row.id)
        row.status, row.last_error = "failed", f"render: {type(exc).__name__}: {exc}"[:2000]
        return "failed"
    if rendered is None:
        row.status = "skipped"
        return "skipped"
    row.attempts += 1
    row.to_address, row.subject = rendered.to[:320], rendered.subject
    return Outgoing(rendered, row.message_id, _file_name(row))


def send(
    transport: Transport, config: Config, outgoing: Outgoing, now: datetime
) -> Exception | None:
    """Hand one email to the transport: None when it took it, else why not."""
    try:
        message = build_message(config, outgoing.message_id, outgoing.rendered, now)
        transport.send(message, name=outgoing.file_name)
    except Exception as exc:
        return exc
    return None


def record(row: m.QueuedEmail, now: datetime, error: Exception | None) -> str:
    """Mark a send: 'sent'; else 'retrying' with backoff, 'failed' (a permanent refusal, or
    a day of retries) or 'down' (the server is unreachable: retried like 'retrying')."""
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
        return "sent"
    row.last_error = f"{type(error).__name__}: {error}"[:2000]
    again = None if _permanent(error) else retry_at(
        attempts=row.attempts, first_tried=row.created_at, now=now,
        base=RETRY_BASE, cap=RETRY_CAP,
    )  # fmt: skip
    if again is None:
        row.status = "failed"
        log.warning("email %s to %s failed for good: %s", row.id, row.user_id, error)
    else:
        row.next_attempt_at = again
    if isinstance(error, TransportDown):
        return "down"
    return "failed" if again is None else "retrying"


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _file_name(row: m.QueuedEmail) -> str:
    return _SAFE.sub("-", f"{row.created_at:%Y%m%dT%H%M%S}-{row.kind}-{row.id}")


def send_one(db: Database, config: Config, now: datetime, transport: Transport) -> str | None:
    """Claim one due email, then prepare, send and record it in the claim's transaction
    (the row stays locked while the transport works). Its outcome (see `prepare` and
    `record`); None when no email is due."""

    def work(uow: UnitOfWork, row: m.QueuedEmail) -> str:
        outgoing = prepare(uow.session, config, row, now)
        if isinstance(outgoing, str):
            return outgoing
        return record(row, now, send(transport, config, outgoing, now))

    return claim_one(db, QUEUE.claim_statement(now), work, config=config, now=now)


def send_due(
    db: Database,
    config: Config,
    now: datetime,
    *,
    transport: Transport | None = None,
    until: float | None = None,
) -> EmailPass:
    """Send every email due at `now`; stop early when the server is down, or at the
    `time.monotonic()` instant `until` (what is left is `EmailPass.cut_short`)."""
    transport = (transport or transport_for(config)) if QUEUE.any_due(db, now) else None
    if transport is None:
        return EmailPass()
    try:
        done = drain(lambda: send_one(db, config, now, transport), until=until, halt={"down"})
    finally:
        transport.close()
    counts = done.outcomes
    return EmailPass(sent=counts["sent"], retrying=counts["retrying"] + counts["down"],
                     failed=counts["failed"], skipped=counts["skipped"],
                     cut_short=done.cut_short)  # fmt: skip
