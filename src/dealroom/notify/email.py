"""Email: queued with the move that caused it (services/email_queue.py), rendered and
sent by the worker.

The worker claims due rows with `FOR UPDATE SKIP LOCKED` and sends each in its own
transaction, holding the row lock while it talks to the SMTP server, then marks it sent
with its Message-ID. A crash before that commit leaves the row pending (the one way a
mail can go twice: at-least-once, never twice by two workers). On SQLite the claim is the
database's write lock, so a slow SMTP server holds up writers for as long as the send
takes, at most the 10 s timeout: point embedded mode at a local relay, or at the folder.
A transient failure is retried with backoff for a day; a permanent refusal (5xx) fails
the row at once.

Without `DEALROOM_SMTP_URL` the transport is a folder of .eml files
(`DEALROOM_MAIL_DIR`, default `./dealroom-data/mail`): embedded mode and the demo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.quotes import at_least_cents
from dealroom.notify import retry_at
from dealroom.services.email_queue import sender_domain
from dealroom.services.preferences import user_zone
from dealroom.services.uow import session_scope

log = logging.getLogger("dealroom.email")

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
SMTP_TIMEOUT = 10.0
#: Python's folding at 78 columns splits a subject that starts with "[DEAL-…]" right after
#: "Subject:", which some readers show with a leading space; headers stay under RFC
#: 5322's hard limit of 998 instead (subjects are cut at 400).
MAIL_POLICY = policy.default.clone(max_line_length=998)
GENERIC = "_generic"


# --- rendering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    to: str
    subject: str
    text: str
    html: str
    deal_ref: str | None = None


@cache
def environment() -> Environment:
    """Text templates are plain; HTML templates are autoescaped."""
    return Environment(
        loader=PackageLoader("dealroom.notify", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def template_names() -> frozenset[str]:
    names = set(environment().list_templates(extensions=["txt"]))
    html = set(environment().list_templates(extensions=["html"]))
    return frozenset(n[:-4] for n in names if n[:-4] + ".html" in html)


def template_for(name: str) -> str:
    """The template of a notification type, or the generic one (imported processes)."""
    return name if name in template_names() and not name.startswith("_") else GENERIC


def render(template: str, context: dict[str, Any], *, to: str) -> Rendered:
    env = environment()
    text_t = env.get_template(f"{template}.txt")
    subject = "".join(text_t.blocks["subject"](text_t.new_context(context)))
    return Rendered(
        to=to,
        subject=" ".join(subject.split())[:400],
        text=text_t.render(context),
        html=env.get_template(f"{template}.html").render(context),
        deal_ref=(context.get("deal") or {}).get("ref"),
    )


def money(amount: Decimal | str | None, currency: str) -> str | None:
    if amount is None:
        return None
    return f"{at_least_cents(Decimal(str(amount))):,} {currency}"


def local_time(ts: datetime | str | None, tz: ZoneInfo) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    t = ts.astimezone(tz)
    return f"{t.day} {t:%b %Y, %H:%M} ({tz.key})"


def party(user: m.User | None) -> dict[str, Any]:
    if user is None:
        return {"id": None, "name": "(unknown)", "organization": None, "display": "(unknown)"}
    display = f"{user.name} ({user.organization})" if user.organization else user.name
    return {"id": user.id, "name": user.name, "organization": user.organization,
            "display": display}  # fmt: skip


def quote_view(q: m.QuoteVersion | None, tz: ZoneInfo) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "number": q.number,
        "by": q.created_by_role,
        "price": money(q.unit_price, q.currency),
        "quantity": f"{q.quantity:,}",
        "total": money(q.total_price, q.currency),
        "currency": q.currency,
        "lead_time_days": q.lead_time_days,
        "valid_until": local_time(q.valid_until, tz),
        "change": None if q.price_change_pct is None else f"{q.price_change_pct:+}%",
        "message": q.message,
        "status": q.status,
    }


def deal_url(config: Config, deal_id: str) -> str:
    return f"{config.base_url.rstrip('/')}/deals/{deal_id}"


def deal_view(config: Config, deal: m.Deal) -> dict[str, Any]:
    return {"id": deal.id, "ref": deal.ref, "state": deal.state.replace("-", " "),
            "process": deal.process_name, "url": deal_url(config, deal.id)}  # fmt: skip


def listing_view(deal: m.Deal) -> dict[str, Any]:
    snap = deal.listing_snapshot or {}
    currency = snap.get("currency", "")
    return {"title": snap.get("title", "(untitled)"), "currency": currency,
            "unit_price": money(snap.get("unit_price"), currency)}  # fmt: skip


def _move_event(
    session: Session, deal_id: str, seq: int | None, transition: str | None
) -> m.Event | None:
    """The event of the move a notification tells of: the latest at or before `seq` that
    fired `transition` (a reminder takes the latest event)."""
    stmt = select(m.Event).where(m.Event.deal_id == deal_id)
    if seq is not None:
        stmt = stmt.where(m.Event.seq <= seq)
    recent = list(session.scalars(stmt.order_by(m.Event.seq.desc()).limit(8)))
    for e in recent:
        if transition is None or (e.payload or {}).get("transition") == transition:
            return e
    return recent[0] if recent else None


def quote_at(session: Session, deal_id: str, event: m.Event | None) -> m.QuoteVersion | None:
    """The quote version an event names, else the one the latest earlier event named
    (a move that made no version, such as a request or a reminder)."""
    stmt = select(m.QuoteVersion).where(m.QuoteVersion.deal_id == deal_id)
    if event is None:
        return session.scalar(stmt.order_by(m.QuoteVersion.number.desc()).limit(1))
    number = (event.payload or {}).get("version")
    if not isinstance(number, int):
        earlier = session.scalars(
            select(m.Event.payload)
            .where(m.Event.deal_id == deal_id, m.Event.seq < event.seq)
            .order_by(m.Event.seq.desc())
            .limit(50)
        )
        number = next(
            (p["version"] for p in earlier if isinstance((p or {}).get("version"), int)), None
        )
    if number is None:
        return None
    return session.scalar(stmt.where(m.QuoteVersion.number == number))


def _who(event: m.Event | None, recipient: m.User, parties: dict[str, Any]) -> str:
    if event is None:
        return "dealroom"
    if event.actor_id is not None and event.actor_id == recipient.id:
        return "You"
    if event.actor_type in ("buyer", "seller"):
        return str(parties[event.actor_type]["name"])
    return "The marketplace" if event.actor_type == "operator" else "dealroom"


def notification_context(
    session: Session, config: Config, row: m.EmailOutbox, user: m.User, tz: ZoneInfo
) -> tuple[str, dict[str, Any]] | None:
    n = session.get(m.Notification, row.notification_id) if row.notification_id else None
    deal = session.get(m.Deal, n.deal_id) if n is not None and n.deal_id else None
    if n is None or deal is None:
        return None
    buyer, seller = (
        party(session.get(m.User, deal.buyer_id)),
        party(session.get(m.User, deal.seller_id)),
    )
    parties = {"buyer": buyer, "seller": seller}
    role = "buyer" if user.id == deal.buyer_id else "seller"
    transition = (n.payload or {}).get("transition")
    event = _move_event(session, deal.id, row.event_seq, transition)
    quote = quote_at(session, deal.id, event)
    previous = None
    if quote is not None and quote.number > 1:
        previous = session.scalar(
            select(m.QuoteVersion).where(
                m.QuoteVersion.deal_id == deal.id, m.QuoteVersion.number == quote.number - 1
            )
        )
    order = session.scalar(select(m.Order).where(m.Order.deal_id == deal.id))
    if order is not None and order.created_at > n.created_at:
        order = None
    ev_payload = (event.payload or {}) if event is not None else {}
    context = {
        "notification": n.name,
        "headline": n.name.replace("-", " ").capitalize(),
        "transition": transition,
        "recipient": {**party(user), "role": role},
        "other": seller if role == "buyer" else buyer,
        "buyer": buyer,
        "seller": seller,
        "who": _who(event, user, parties),
        "actor": event.actor_type if event is not None else "system",
        "deal": deal_view(config, deal),
        "listing": listing_view(deal),
        "quote": quote_view(quote, tz),
        "previous": quote_view(previous, tz),
        "order": None
        if order is None
        else {"ref": order.ref, "total": money(order.total, order.currency)},
        "message": ev_payload.get("message") or ev_payload.get("body"),
        "reason": ev_payload.get("reason"),
        "request": ev_payload.get("request")
        if isinstance(ev_payload.get("request"), dict)
        else None,
        "reminder_due": local_time((n.payload or {}).get("due_at"), tz),
        "base_url": config.base_url.rstrip("/"),
    }
    return template_for(n.template), context


def render_row(session: Session, config: Config, row: m.EmailOutbox) -> Rendered | None:
    """Render one outbox row; None when there is nothing to send any more (the user or
    the deal is gone, a digest whose items all vanished)."""
    user = session.get(m.User, row.user_id)
    if user is None or user.deleted_at is not None or not user.email:
        return None
    tz = user_zone(session, user)
    if row.kind == "digest":
        from dealroom.notify.digest import digest_context

        found = digest_context(session, config, row, user, tz)
    else:
        found = notification_context(session, config, row, user, tz)
    if found is None:
        return None
    template, context = found
    return render(template, context, to=formataddr((" ".join(user.name.split()), user.email)))


def build_message(config: Config, row: m.EmailOutbox, r: Rendered, now: datetime) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = r.subject
    msg["From"] = config.email_from
    msg["To"] = r.to
    msg["Date"] = formatdate(now.timestamp(), usegmt=True)
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = "auto-generated"
    if r.deal_ref:
        msg["X-Dealroom-Deal"] = r.deal_ref
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    return msg


# --- transports ---------------------------------------------------------------------------


class Transport(Protocol):
    def send(self, msg: EmailMessage, *, name: str) -> None: ...

    def close(self) -> None: ...


class TransportDown(Exception):
    """The server could not be reached: stop this pass, retry the rest later."""


@dataclass
class SmtpTransport:
    """One connection per worker pass, opened on the first email."""

    url: str
    local_hostname: str = "localhost"
    timeout: float = SMTP_TIMEOUT
    _conn: smtplib.SMTP | None = field(default=None, init=False, repr=False)

    def _connect(self) -> smtplib.SMTP:
        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        host = parts.hostname or "localhost"
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        try:
            if parts.scheme == "smtps":
                conn = smtplib.SMTP_SSL(host, parts.port or 465, local_hostname=self.local_hostname,
                                        timeout=self.timeout, context=context)  # fmt: skip
            else:
                conn = smtplib.SMTP(host, parts.port or 25, local_hostname=self.local_hostname,
                                    timeout=self.timeout)  # fmt: skip
                if query.get("starttls", ["0"])[0] in ("1", "true", "yes"):
                    conn.starttls(context=context)
            if parts.username:
                conn.login(unquote(parts.username), unquote(parts.password or ""))
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportDown(f"{host}:{parts.port}: {exc}") from exc
        return conn

    def send(self, msg: EmailMessage, *, name: str) -> None:
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.send_message(msg)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TransportDown(str(exc)) from exc
        except smtplib.SMTPException:
            raise  # the server answered about this message (SMTPException is an OSError)
        except OSError as exc:
            self._drop()
            raise TransportDown(str(exc)) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


@dataclass
class FolderTransport:
    """Embedded mode: each email becomes `<folder>/<name>.eml`, written atomically (a
    resend overwrites the same file rather than adding one)."""

    folder: Path

    def send(self, msg: EmailMessage, *, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{name}.eml"
        tmp = target.with_suffix(".eml.tmp")
        tmp.write_bytes(msg.as_bytes())
        os.replace(tmp, target)

    def close(self) -> None:
        return None


def transport_for(config: Config) -> Transport | None:
    """SMTP when configured, else the mail folder; None when neither is (code that built
    its own Config without mail settings: emails stay queued)."""
    if config.smtp_url:
        return SmtpTransport(config.smtp_url, local_hostname=sender_domain(config))
    if config.mail_dir is not None:
        return FolderTransport(config.mail_dir)
    return None


def mail_destination(config: Config) -> str | None:
    """Where mail goes, for `dealroom demo` and `serve` to print."""
    if config.smtp_url:
        parts = urlsplit(config.smtp_url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or (465 if parts.scheme == 'smtps' else 25)}"
    if config.mail_dir is not None:
        return str(config.mail_dir.resolve())
    return None


# --- the send pass (worker) ---------------------------------------------------------------


@dataclass
class EmailPass:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    #: Stopped at its time budget with emails still due (the worker comes back at once).
    cut_short: bool = False


def _claim(session: Session, now: datetime) -> m.EmailOutbox | None:
    stmt = (
        select(m.EmailOutbox)
        .where(m.EmailOutbox.status == "pending", m.EmailOutbox.next_attempt_at <= now)
        .order_by(m.EmailOutbox.next_attempt_at, m.EmailOutbox.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _file_name(row: m.EmailOutbox) -> str:
    return _SAFE.sub("-", f"{row.created_at:%Y%m%dT%H%M%S}-{row.kind}-{row.id}")


def send_one(db: Database, config: Config, now: datetime, transport: Transport) -> str:
    """Claim, render, send and mark one due email in one transaction. Returns 'sent',
    'retrying', 'failed', 'skipped', 'down' (server unreachable) or 'none'."""
    with session_scope(db) as session:
        row = _claim(session, now)
        if row is None:
            # it only read: the commit keeps the prepared statements (db/session.py)
            return "none"
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
        try:
            transport.send(build_message(config, row, rendered, now), name=_file_name(row))
        except Exception as exc:
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            again = None if _permanent(exc) else retry_at(
                attempts=row.attempts, first_tried=row.created_at, now=now,
                base=RETRY_BASE, cap=RETRY_CAP,
            )  # fmt: skip
            if again is None:
                row.status = "failed"
                log.warning("email %s to %s failed for good: %s", row.id, row.user_id, exc)
            else:
                row.next_attempt_at = again
            if isinstance(exc, TransportDown):
                return "down"
            return "failed" if again is None else "retrying"
        row.status, row.sent_at, row.last_error = "sent", now, None
        return "sent"


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
    result = EmailPass()
    with session_scope(db, write=False) as s:  # most passes find nothing: no write lock for that
        due = s.scalar(
            select(m.EmailOutbox.id)
            .where(m.EmailOutbox.status == "pending", m.EmailOutbox.next_attempt_at <= now)
            .limit(1)
        )
    transport = (transport or transport_for(config)) if due is not None else None
    if transport is None:
        return result
    try:
        while True:
            if until is not None and time.monotonic() >= until:
                result.cut_short = True
                break
            outcome = send_one(db, config, now, transport)
            if outcome == "none":
                break
            if outcome in ("down", "retrying"):
                result.retrying += 1
                if outcome == "down":
                    break
            else:
                setattr(result, outcome, getattr(result, outcome) + 1)
    finally:
        transport.close()
    return result
