"""The email queue: emails are queued in the transaction of the move that causes them.

`enqueue` runs inside the move's transaction (services/notifications.record calls it): it
only reads the recipients' preferences and inserts one queued email (`QueuedEmail`) per
bell item of a user who wants immediate email. Rendering and sending happen after commit, in the
worker (notify/email.py), so a move never waits on templates (nor fails because of one)
while it holds the deal and feed locks. The row keeps the deal's last event sequence, so
the email tells of that move even when it is rendered later: the quote version its event
names, the message and reason it carried.
"""

from __future__ import annotations

import uuid
from email.utils import parseaddr

from sqlalchemy import bindparam, select

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.services import feed
from dealroom.services.uow import UnitOfWork

#: Reminders the rfq reference (5.4) sends as push only: they stay on the bell.
BELL_ONLY = frozenset({"quote-expiring", "counter-expiring", "offer-expiring"})

_EMAIL_MODES = select(m.UserPreference.user_id, m.UserPreference.email).where(
    m.UserPreference.user_id.in_(bindparam("ids", expanding=True))
)


def enqueue(
    uow: UnitOfWork,
    deal: m.Deal,
    items: list[m.Notification],
    *,
    modes: dict[str, str] | None = None,
) -> list[m.QueuedEmail]:
    """Queue one email per bell item whose recipient wants immediate email (the default).
    Digest users' items wait for their digest; `off` users get none. `modes`: the
    preferences of the users who have set one, if the caller read them already."""
    if not items:
        return []
    if modes is None:
        users = {n.user_id for n in items}
        modes = dict(uow.session.execute(_EMAIL_MODES, {"ids": list(users)}).all())
    queued = []
    for n in items:
        if n.name in BELL_ONLY or modes.get(n.user_id, "immediate") != "immediate":
            continue
        row = m.QueuedEmail(
            user_id=n.user_id,
            kind="notification",
            notification=n,
            deal_id=deal.id,
            event_seq=deal.last_seq,
            status="pending",
            attempts=0,
            next_attempt_at=uow.now,
            message_id=new_message_id(uow.config),
            created_at=uow.now,
        )
        feed.hold(uow.session, row)  # written with its bell item, at commit
        queued.append(row)
    return queued


def sender_domain(config: Config) -> str:
    address = parseaddr(config.email_from)[1]
    return address.rpartition("@")[2] or "dealroom.localhost"


def new_message_id(config: Config) -> str:
    return f"<{uuid.uuid4().hex}@{sender_domain(config)}>"
