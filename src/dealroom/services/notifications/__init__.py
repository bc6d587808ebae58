"""Notifications: recorded in the transaction of the move (or reminder) that fires them.

A process's notification names who is told of which move, with which template. Here each
recipient gets a bell item (a `Notification` row), and those who want immediate email a
queued email (services/email_queue.py), which notify/ sends after commit. Each bell item
also goes on the outbox, so open streams hear of it once it is committed and never
before. Bell items are written at commit, under the feed lock (`feed.hold`), so that
their ids follow commit order like the feed's: the bell stream resumes by id.
"""

from __future__ import annotations

from typing import Any

from dealroom.db import models as m
from dealroom.domain.timestamps import iso
from dealroom.services import feed
from dealroom.services.notifications import email_queue
from dealroom.services.outbox import OutboxItem
from dealroom.services.uow import UnitOfWork


def _recipients(deal: m.Deal, roles: tuple[str, ...] | list[str]) -> list[str]:
    ids = {"buyer": deal.buyer_id, "seller": deal.seller_id}
    return list(dict.fromkeys(ids[r] for r in roles if r in ids))


def record(
    uow: UnitOfWork,
    deal: m.Deal,
    name: str,
    template: str,
    roles: tuple[str, ...] | list[str],
    payload: dict[str, Any],
    *,
    email_modes: dict[str, str] | None = None,
) -> list[m.Notification]:
    """`email_modes`: the parties' email preferences if already read (`email_queue.enqueue`)."""
    items = []
    for user_id in _recipients(deal, roles):
        n = m.Notification(
            user_id=user_id,
            deal_id=deal.id,
            name=name,
            template=template,
            payload={"deal_ref": deal.ref, "state": deal.state, **payload},
            created_at=uow.now,
        )
        feed.hold(uow.session, n)
        items.append(n)
        uow.outbox.append(
            OutboxItem("notification", deal.id, {"user_id": user_id, "name": name, **n.payload})
        )
    # Immediate email for those who want it (sent after commit by notify/email.py).
    email_queue.enqueue(uow, deal, items, modes=email_modes)
    return items


def record_reminder(uow: UnitOfWork, deal: m.Deal, timer: m.Timer) -> list[m.Notification]:
    """A reminder timer came due (quote expiring, accept-order reminder …)."""
    from dealroom.services.processes import get_process

    process = get_process(uow.session, deal.process_name, deal.process_version)
    spec = next((n for n in process.notifications if n.name == timer.name), None)
    if spec is None:
        return []
    roles = [r for r in spec.to if r != "other-party"] or ["buyer", "seller"]
    return record(
        uow,
        deal,
        spec.name,
        spec.template,
        roles,
        {"reminder": True, "due_at": iso(timer.due_at)},
    )
