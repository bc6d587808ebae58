"""Trust profiles: what the record says about a user, computed from facts, never stored.

Every figure comes from rows that were written for another reason: the `response_seconds`
the engine records in each party move that answers the other side (market reference: "the
next response window is measured against the response-time SLA, which feeds back into the
trust profile"), the deals a user is a party to and whether they ended with an order, the
reviews of Sharetribe-style processes (`data.reviews.buyer` / `.seller`), and the account.

Each query is bounded and follows an index:

- counts of ended and ordered deals: `ix_deals_buyer` / `ix_deals_seller` (an OR of the two
  becomes a bitmap OR on PostgreSQL), then `uq_orders_deal_id`;
- answer times and reviews: the user's most recent `RECENT_DEALS` deals, taken from each
  party index in `updated_at` order with a LIMIT, then their events through
  `uq_events_deal_seq (deal_id, seq)`. Events are read by deal, not by actor: that needs no
  extra index, and it stays a deal-scoped query when the schema shards by deal (Citus).
  An index `events (actor_id, created_at)` would let "the last N answers of a user" skip
  the deals step, but it would fan out to every shard; it is not worth its write cost.

Bounded is not cheap: a busy seller's profile reads hundreds of deals and their events, and
every answer of a deal room (each transition's response) shows both parties' profiles.
`bench/api.py` measured it as more than half of a transition's cost. So the profiles a deal
shows come from `cached_profiles`, a per-process memo at most `max_age` seconds old (the
request clock decides, `DEALROOM_TRUST_CACHE_SECONDS`, default 60); the profile page
`GET /v1/users/{id}` is always computed afresh. A reputation figure a minute old is what
marketplaces show anyway (response rates are commonly recomputed daily).
"""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.errors import NotFound
from dealroom.domain.model import PARTIES
from dealroom.domain.settings import Settings
from dealroom.domain.timeexpr import Period
from dealroom.services.processes import get_process

#: Answer times and reviews come from a user's most recent deals, at most this many.
RECENT_DEALS = 500
#: A calendar month in an SLA counts as 30 days.
_MONTH = timedelta(days=30)


def trust_profile(session: Session, user_id: str, now: datetime) -> dict[str, Any]:
    """The trust profile of one user; NEG-011 if there is no such user."""
    user = session.get(m.User, user_id) if 0 < len(user_id) <= 36 else None
    if user is None or user.deleted_at is not None:
        raise NotFound("There is no such user.", rule="USER")
    return _profile(session, user, now)


def trust_profiles(
    session: Session, user_ids: Iterable[str], now: datetime
) -> dict[str, dict[str, Any]]:
    """Trust profiles by user id (a deal shows both parties'); unknown ids are left out."""
    ids = list(dict.fromkeys(i for i in user_ids if i))
    if not ids:
        return {}
    users = {u.id: u for u in session.scalars(select(m.User).where(m.User.id.in_(ids)))}
    return {i: _profile(session, users[i], now) for i in ids if i in users}


class ProfileCache:
    """Trust profiles by (database, user), each kept `max_age` seconds of request time.

    Thread-safe; bounded to `size` users, the least recently computed dropped first. Ages
    are measured on the request clock, so a test's fake clock moving on expires entries.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[datetime, dict[str, Any]]] = OrderedDict()

    def get(self, key: tuple[str, str], now: datetime, max_age: float) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        age = (now - entry[0]).total_seconds()
        return entry[1] if 0 <= age < max_age else None

    def put(self, key: tuple[str, str], now: datetime, profile: dict[str, Any]) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (now, profile)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHE = ProfileCache()


def cached_profiles(
    session: Session, user_ids: Iterable[str], now: datetime, *, max_age: float
) -> dict[str, dict[str, Any]]:
    """`trust_profiles`, each at most `max_age` seconds old (0: computed now)."""
    ids = list(dict.fromkeys(i for i in user_ids if i))
    if max_age <= 0:
        return trust_profiles(session, ids, now)
    database = str(session.get_bind().engine.url)
    out: dict[str, dict[str, Any]] = {}
    missing = []
    for user_id in ids:
        hit = _CACHE.get((database, user_id), now, max_age)
        if hit is None:
            missing.append(user_id)
        else:
            out[user_id] = hit
    for user_id, profile in trust_profiles(session, missing, now).items():
        _CACHE.put((database, user_id), now, profile)
        out[user_id] = profile
    return {i: out[i] for i in ids if i in out}


def _profile(session: Session, user: m.User, now: datetime) -> dict[str, Any]:
    ended, ended_with_order = _ended(session, user.id)
    closed = _closed(session, user.id)
    recent = _recent_deals(session, user.id)
    answers = _answers(session, user.id, recent)
    slas = _slas(session, set(answers))
    seconds = [s for values in answers.values() for s in values]
    within = sum(1 for key, values in answers.items() for s in values if s <= slas[key])
    ratings = _ratings(session, user.id, recent)
    return {
        "user_id": user.id,
        "member_since": user.created_at.astimezone(UTC).date().isoformat(),
        "account_age_days": max(0, (now - user.created_at).days),
        "kyc_verified": bool(user.kyc_verified),
        "median_response_seconds": int(statistics.median(seconds)) if seconds else None,
        "responses": len(seconds),
        "responses_within_sla": round(within / len(seconds), 4) if seconds else None,
        "deals_closed": closed,
        "deals_ended": ended,
        "completion_rate": round(ended_with_order / ended, 4) if ended else None,
        "reviews_average": round(statistics.fmean(ratings), 2) if ratings else None,
        "reviews_count": len(ratings),
    }


def _party(user_id: str) -> Any:
    return or_(m.Deal.buyer_id == user_id, m.Deal.seller_id == user_id)


def _ended(session: Session, user_id: str) -> tuple[int, int]:
    """Deals that reached a final state, and how many of them ended with an order."""
    row = session.execute(
        select(func.count(m.Deal.id), func.count(m.Order.id))
        .select_from(m.Deal)
        .outerjoin(m.Order, m.Order.deal_id == m.Deal.id)
        .where(_party(user_id), m.Deal.closed_at.is_not(None))
    ).one()
    return int(row[0]), int(row[1])


def _closed(session: Session, user_id: str) -> int:
    """Deals closed: the user is a party and the deal has an order."""
    return int(
        session.execute(
            select(func.count())
            .select_from(m.Deal)
            .join(m.Order, m.Order.deal_id == m.Deal.id)
            .where(_party(user_id))
        ).scalar_one()
    )


def _recent_deals(session: Session, user_id: str) -> list[str]:
    """The user's most recent deals as buyer or seller, each side read down its own index."""

    sides = [
        select(m.Deal.id, m.Deal.updated_at)
        .where(column == user_id)
        .order_by(m.Deal.updated_at.desc())
        .limit(RECENT_DEALS)
        .subquery()
        for column in (m.Deal.buyer_id, m.Deal.seller_id)
    ]
    both = union_all(*(select(side) for side in sides)).subquery()
    stmt = select(both.c.id).order_by(both.c.updated_at.desc()).limit(RECENT_DEALS)
    return list(dict.fromkeys(session.scalars(stmt)))


def _answers(
    session: Session, user_id: str, deal_ids: list[str]
) -> dict[tuple[str, int], list[int]]:
    """The user's answer times, by the (process, version) of the deal they answered in."""
    out: dict[tuple[str, int], list[int]] = {}
    if not deal_ids:
        return out
    rows = session.execute(
        select(m.Deal.process_name, m.Deal.process_version, m.Event.payload)
        .select_from(m.Event)
        .join(m.Deal, m.Deal.id == m.Event.deal_id)
        .where(
            m.Event.deal_id.in_(deal_ids),
            m.Event.actor_id == user_id,
            m.Event.actor_type.in_(PARTIES),
        )
    )
    for name, version, payload in rows:
        seconds = payload.get("response_seconds") if isinstance(payload, dict) else None
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
            out.setdefault((name, version), []).append(seconds)
    return out


def _slas(session: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Each process's response-time SLA in seconds (the `response_sla` setting)."""
    out = {}
    for name, version in keys:
        try:
            period = get_process(session, name, version).settings.response_sla
        except NotFound:  # a process removed since: measure against the default
            period = Settings().response_sla
        out[(name, version)] = _seconds(period)
    return out


def _seconds(period: Period) -> int:
    return int((period.months * _MONTH + period.delta).total_seconds())


def _ratings(session: Session, user_id: str, deal_ids: list[str]) -> list[int]:
    """Published review ratings about the user: a buyer's review is about the seller."""
    if not deal_ids:
        return []
    rows = session.execute(
        select(m.Deal.buyer_id, m.Deal.seller_id, m.Deal.data["reviews"]).where(
            m.Deal.id.in_(deal_ids)
        )
    )
    ratings = []
    for buyer_id, seller_id, reviews in rows:
        if not isinstance(reviews, dict):
            continue
        about_me = []
        if seller_id == user_id:
            about_me.append(reviews.get("buyer"))
        if buyer_id == user_id:
            about_me.append(reviews.get("seller"))
        for review in about_me:
            if isinstance(review, dict) and review.get("published") is True:
                rating = review.get("rating")
                if isinstance(rating, int) and not isinstance(rating, bool):
                    ratings.append(rating)
    return ratings
