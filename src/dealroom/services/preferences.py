"""Notification preferences: immediate email, a morning digest, or none.

A user without a row has the defaults: immediate email, digest hour 8, their own
timezone. Switching to `digest` starts the digest from that moment (older bell items are
not mailed after the fact) and schedules the next digest at the digest hour in the
chosen timezone; leaving `digest` clears the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dealroom.db import models as m
from dealroom.notify.digest import next_slot
from dealroom.notify.email import zone
from dealroom.services.uow import UnitOfWork

EmailMode = Literal["immediate", "digest", "off"]
DEFAULT_MODE: EmailMode = "immediate"
DEFAULT_HOUR = 8


@dataclass(frozen=True)
class Preferences:
    email: str
    digest_hour: int
    timezone: str
    next_digest_at: datetime | None


def _view(user: m.User, row: m.UserPreference | None) -> Preferences:
    if row is None:
        return Preferences(DEFAULT_MODE, DEFAULT_HOUR, zone(user.timezone).key, None)
    return Preferences(row.email, row.digest_hour, row.timezone, row.next_digest_at)


def get(uow: UnitOfWork, user: m.User) -> Preferences:
    return _view(user, uow.session.get(m.UserPreference, user.id))


def update(
    uow: UnitOfWork,
    user: m.User,
    *,
    email: EmailMode | None = None,
    digest_hour: int | None = None,
    timezone: str | None = None,
) -> Preferences:
    """Change what is given; what is left out keeps its current value. The caller has
    validated the values (a known mode, an hour 0-23, an IANA zone). Moving the hour or
    the zone reschedules the next digest; a day never gets two (see notify/digest.py)."""
    row = uow.session.get(m.UserPreference, user.id, with_for_update=True)
    current = _view(user, row)
    if row is None:
        row = m.UserPreference(user_id=user.id)
        uow.session.add(row)
    was_digest = current.email == "digest"
    row.email = email or current.email
    row.digest_hour = current.digest_hour if digest_hour is None else digest_hour
    row.timezone = timezone or current.timezone
    row.updated_at = uow.now
    if row.email == "digest":
        moved = (row.digest_hour, row.timezone) != (current.digest_hour, current.timezone)
        if not was_digest:
            row.digest_from = uow.now
        if not was_digest or moved or row.next_digest_at is None:
            # Unchanged settings keep a digest that is due but not yet composed.
            row.next_digest_at = next_slot(uow.now, zone(row.timezone), row.digest_hour)
    else:
        row.digest_from = None
        row.next_digest_at = None
    uow.session.flush()
    return _view(user, row)
