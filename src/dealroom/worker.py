"""The worker: fires due timers, once each, through the same service path as a user.

Each due timer fires in its own transaction. On PostgreSQL any number of workers run side
by side: a worker claims a timer with `FOR UPDATE SKIP LOCKED`, then takes the deal's row
lock without waiting (`SKIP LOCKED` again). A user request locks the deal first and then
its timers, so a worker never waits on a deal while holding a timer: no deadlock, and a
deal that is busy is simply tried again on the next pass. Firing marks the timer `fired`
in the same transaction as the transition, so it cannot fire twice; a crash before commit
rolls everything back and leaves the timer due.

`run_once` fires at a fixed instant (cron, catching up, tests: `--once --now`); the
continuous worker passes its clock instead, so each firing is recorded at the time it
really happened and what comes due during a long pass is picked up in the same pass.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, select

from dealroom.clock import Clock
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import DealroomError
from dealroom.notify import digest, email, webhooks
from dealroom.services import deals, notifications
from dealroom.services.outbox import Broker
from dealroom.services.queues import Queue, claim_one, drain
from dealroom.services.uow import UnitOfWork, session_scope

log = logging.getLogger("dealroom.worker")


#: A pass tries a busy deal's timer again this many times, after a short pause each time.
BUSY_RETRIES = 3
BUSY_PAUSE = 0.05
#: The continuous worker spends at most this many seconds of a pass on email and on
#: webhooks each, then fires what came due meanwhile: a backlog of mail (a burst of
#: activity, a slow SMTP server) never holds deadlines back by more than that. The 30-minute
#: soak found timers 40 s overdue behind 1,000s of queued emails before this.
DELIVERY_SLICE = 1.0


@dataclass
class PassResult:
    fired: int = 0
    #: Timers left due because their deal stayed locked (a request, another worker).
    skipped_busy: int = 0
    failed: int = 0
    #: Timers of a state the deal had already left, cancelled without firing.
    stale: int = 0
    #: The delivery passes (dealroom.notify): digests queued, emails sent, webhooks delivered.
    digests: int = 0
    emails_sent: int = 0
    emails_retrying: int = 0
    emails_failed: int = 0
    webhooks_delivered: int = 0
    webhooks_retrying: int = 0
    webhooks_failed: int = 0
    #: Email or webhook work was left for the next pass (its time slice ran out).
    more: bool = False


TIMERS = Queue(
    m.Timer,
    due=lambda now: and_(m.Timer.status == "pending", m.Timer.due_at <= now),
    order=(m.Timer.due_at,),
)


def claim_statement(now: datetime, exclude: set[int] | None = None) -> Select[m.Timer]:
    """The oldest due timer nobody holds: a range scan of `ix_timers_due (status, due_at)`
    that stops at the first row it can lock. Ordered by `due_at` alone, as the index is:
    a tie-break on `id` would make PostgreSQL read and sort every timer due at the same
    instant (an incremental sort of 100,000 rows for a burst) on every claim."""
    also = (m.Timer.id.not_in(exclude),) if exclude else ()
    return TIMERS.claim_statement(now, *also)


def fire_one(
    db: Database, config: Config, now: datetime, broker: Broker | None, exclude: set[int]
) -> str | None:
    """Claim and fire one due timer: 'fired', 'stale', 'busy' or 'failed'; None when no
    timer is due."""
    timer_id: int | None = None

    def fire(uow: UnitOfWork, timer: m.Timer) -> str:
        nonlocal timer_id
        timer_id = timer.id
        deal = uow.session.execute(
            select(m.Deal).where(m.Deal.id == timer.deal_id).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if deal is None:  # another transaction holds the deal; nothing written yet
            exclude.add(timer.id)
            return "busy"
        timer.status = "fired"
        timer.done_at = now
        if deal.state != timer.state:
            # Left the state already: the move that left it should have cancelled this.
            timer.status = "cancelled"
            return "stale"
        if timer.kind == "transition":
            deals.fire_system(uow, deal=deal, name=timer.name, timer_rule=timer.rule)
        else:
            notifications.record_reminder(uow, deal, timer)
        return "fired"

    try:
        return claim_one(db, claim_statement(now, exclude), fire, config=config, now=now,
                         broker=broker, user_agent="dealroom-worker")  # fmt: skip
    except DealroomError as exc:
        assert timer_id is not None
        _mark_failed(db, timer_id, now, str(exc))
        return "failed"


def _mark_failed(db: Database, timer_id: int, now: datetime, reason: str) -> None:
    """A timer the engine refuses (its process changed under it) is set aside, not retried."""
    with session_scope(db) as s:
        timer = s.get(m.Timer, timer_id, with_for_update=True)
        if timer is not None and timer.status == "pending":
            timer.status = "failed"
            timer.done_at = now
            log.warning("timer %s on deal %s failed: %s", timer.id, timer.deal_id, reason)


def run_once(
    db: Database,
    config: Config,
    now: datetime,
    *,
    broker: Broker | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    delivery_slice: float | None = None,
) -> PassResult:
    """Fire everything due at `now` (for cron, catching up after downtime, and tests).

    With `clock`, each firing reads the clock afresh instead (the continuous worker). A
    timer whose deal is locked is tried again at the end of the pass, a few times, so a
    `--once` run next to other workers or requests leaves nothing due behind. With
    `delivery_slice`, email and webhooks get that many seconds each; what is left waits for
    the next pass (`PassResult.more`).
    """
    result = PassResult()
    busy: set[int] = set()  # timers whose deal was locked: left for the next attempt

    def next_timer() -> str | None:
        return fire_one(db, config, clock.now() if clock else now, broker, busy)

    for attempt in range(BUSY_RETRIES + 1):
        busy.clear()
        timers = drain(next_timer, stop=stop)
        result.fired += timers.outcomes["fired"]
        result.stale += timers.outcomes["stale"]
        result.failed += timers.outcomes["failed"]
        result.skipped_busy = len(busy)
        if not busy or attempt == BUSY_RETRIES or (stop is not None and stop.is_set()):
            break
        time.sleep(BUSY_PAUSE * (attempt + 1))
    if stop is None or not stop.is_set():
        deliver(db, config, clock.now() if clock else now, result, delivery_slice)
    return result


def deliver(
    db: Database, config: Config, now: datetime, result: PassResult, slice_: float | None = None
) -> None:
    """After the timers (whose reminders may add bell items), the delivery passes: queue
    due digests, send due emails, fan out new events to webhooks and deliver them. Each
    drains its queue (services/queues.py): one row claimed with SKIP LOCKED per
    transaction."""
    result.digests += digest.compose_due(db, config, now)
    until = None if slice_ is None else time.monotonic() + slice_
    mail = email.send_due(db, config, now, until=until)
    result.emails_sent += mail.sent
    result.emails_retrying += mail.retrying
    result.emails_failed += mail.failed
    until = None if slice_ is None else time.monotonic() + slice_
    hooks = webhooks.run(db, now, until=until)
    result.more = result.more or mail.cut_short or hooks.cut_short
    result.webhooks_delivered += hooks.delivered
    result.webhooks_retrying += hooks.retrying
    result.webhooks_failed += hooks.failed
    if any((mail.sent, mail.retrying, mail.failed, hooks.delivered, hooks.retrying, hooks.failed)):
        log.info(
            "sent %d email(s) (%d to retry, %d failed), delivered %d webhook(s) (%d to retry, "
            "%d failed)", mail.sent, mail.retrying, mail.failed, hooks.delivered,
            hooks.retrying, hooks.failed,
        )  # fmt: skip


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
            result = run_once(db, config, clock.now(), broker=broker, clock=clock, stop=stop,
                              delivery_slice=DELIVERY_SLICE)  # fmt: skip
            if result.fired:
                log.info("fired %d timer(s)", result.fired)
        except Exception:
            log.exception("worker pass failed; retrying")
            result = PassResult()
        # With mail or webhooks left over, go again at once (timers first).
        stop.wait(0 if result.more else interval)
