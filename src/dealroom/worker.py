"""The worker: fires due timers, once each, through the same service path as a user.

Each due timer fires in its own transaction. On PostgreSQL any number of workers run side
by side: a worker claims a timer with `FOR UPDATE SKIP LOCKED`, then takes the deal's row
lock without waiting (`SKIP LOCKED` again). A user request locks the deal first and then
its timers, so a worker never waits on a deal while holding a timer: no deadlock, and a
deal that is busy is simply tried again on the next pass. Firing marks the timer `fired`
in the same transaction as the transition, so it cannot fire twice; a crash before commit
rolls everything back and leaves the timer due.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealroom.clock import Clock
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import DealroomError
from dealroom.outbox import Broker
from dealroom.services import deals, notifications
from dealroom.services.uow import UnitOfWork

log = logging.getLogger("dealroom.worker")


@dataclass
class PassResult:
    fired: int = 0
    skipped_busy: int = 0
    failed: int = 0


def _claim(session: Session, now: datetime, exclude: set[int]) -> m.Timer | None:
    stmt = (
        select(m.Timer)
        .where(m.Timer.status == "pending", m.Timer.due_at <= now)
        .order_by(m.Timer.due_at, m.Timer.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if exclude:
        stmt = stmt.where(m.Timer.id.not_in(exclude))
    return session.execute(stmt).scalar_one_or_none()


def fire_one(
    db: Database, config: Config, now: datetime, broker: Broker | None, exclude: set[int]
) -> str:
    """Claim and fire one due timer. Returns 'fired', 'busy', 'failed' or 'none'."""
    session = db.session(write=True)
    uow = UnitOfWork(session=session, now=now, config=config, ip=None, user_agent="dealroom-worker")
    timer_id: int | None = None
    try:
        timer = _claim(session, now, exclude)
        if timer is None:
            session.rollback()
            return "none"
        timer_id = timer.id
        deal = session.execute(
            select(m.Deal).where(m.Deal.id == timer.deal_id).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if deal is None:
            session.rollback()
            exclude.add(timer.id)
            return "busy"
        timer.status = "fired"
        timer.done_at = now
        if deal.state != timer.state:
            # Left the state already: the move that left it should have cancelled this.
            timer.status = "cancelled"
        elif timer.kind == "transition":
            deals.fire_system(uow, deal=deal, name=timer.name, timer_rule=timer.rule)
        else:
            notifications.record_reminder(uow, deal, timer)
        session.commit()
    except DealroomError as exc:
        session.rollback()
        assert timer_id is not None
        _mark_failed(db, timer_id, now, str(exc))
        return "failed"
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if broker is not None and uow.outbox:
        broker.publish(uow.outbox)
    return "fired"


def _mark_failed(db: Database, timer_id: int, now: datetime, reason: str) -> None:
    """A timer the engine refuses (its process changed under it) is set aside, not retried."""
    with db.transaction() as s:
        timer = s.get(m.Timer, timer_id, with_for_update=True)
        if timer is not None and timer.status == "pending":
            timer.status = "failed"
            timer.done_at = now
            log.warning("timer %s on deal %s failed: %s", timer.id, timer.deal_id, reason)


def run_once(
    db: Database, config: Config, now: datetime, *, broker: Broker | None = None
) -> PassResult:
    """Fire everything due at `now` (for cron, catching up after downtime, and tests)."""
    result = PassResult()
    busy: set[int] = set()
    while True:
        outcome = fire_one(db, config, now, broker, busy)
        if outcome == "none":
            return result
        if outcome == "fired":
            result.fired += 1
        elif outcome == "busy":
            result.skipped_busy += 1
        else:
            result.failed += 1


def run_forever(
    db: Database,
    config: Config,
    clock: Clock,
    *,
    stop: threading.Event,
    broker: Broker | None = None,
    interval: float = 1.0,
) -> None:
    """Poll for due timers until `stop` is set (embedded mode runs this in a thread)."""
    while not stop.is_set():
        try:
            result = run_once(db, config, clock.now(), broker=broker)
            if result.fired:
                log.info("fired %d timer(s)", result.fired)
        except Exception:
            log.exception("worker pass failed; retrying")
        stop.wait(interval)
