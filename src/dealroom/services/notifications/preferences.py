"""Email preferences: an email per bell item at once, a morning digest, or none.

A user without a row has the defaults: immediate email, digest hour 8, their own
timezone. Switching to `digest` starts the digest from that moment (older bell items are
not mailed after the fact) and schedules the next digest at the digest hour in the
chosen timezone; leaving `digest` clears the schedule.

The schedule: `user_preferences.next_digest_at` holds the next instant the user's local
clock reads the digest hour (UTC, recomputed with zoneinfo, so DST moves it); the worker
composes the digest once it has passed (notify/digest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from dealroom.db import models as m
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


# --- timezones and the digest hour --------------------------------------------------------


def zone(name: str | None) -> ZoneInfo:
    """The named timezone; UTC when the name is missing or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def user_zone(session: Session, user: m.User) -> ZoneInfo:
    """The timezone the user chose, else their account's."""
    pref = session.get(m.UserPreference, user.id)
    return zone(pref.timezone if pref is not None else user.timezone)


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def next_slot(after: datetime, tz: ZoneInfo, hour: int) -> datetime:
    """The first instant strictly after `after` at which the local clock reads hour:00."""
    day = after.astimezone(tz).date()
    for offset in range(3):
        slot = _at(day + timedelta(days=offset), hour, tz)
        if slot > after:
            return slot
    raise AssertionError("unreachable: a local hour comes round within two days")


def last_slot(at: datetime, tz: ZoneInfo, hour: int) -> tuple[datetime, date]:
    """The latest instant at or before `at` at which the local clock read hour:00, and
    that local date (the digest's day)."""
    day = at.astimezone(tz).date()
    for offset in range(3):
        d = day - timedelta(days=offset)
        slot = _at(d, hour, tz)
        if slot <= at:
            return slot, d
    raise AssertionError("unreachable: a local hour came round within two days")
