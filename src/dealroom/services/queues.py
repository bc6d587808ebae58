"""Queues: tables whose rows come due, worked by the worker one row at a time.

Timers, queued emails, webhook deliveries and the users' digest schedules are each a
queue: a row is due once its instant has passed, and any number of workers take the due
rows oldest first. Taking one is a claim, `… ORDER BY <due> LIMIT 1 FOR UPDATE SKIP
LOCKED` in a transaction of its own (`services.uow.transaction`): two workers never take
the same row and neither waits for the other; on SQLite the single writer does the same.
Draining a queue is claiming and working until no row is left due, the pass's time
budget is spent, or the worker is told to stop.

`claim_one` runs the work inside the claim's transaction and returns what the work
returned, so the row stays locked until the work's writes commit with it. The email and
webhook passes write their work as three steps (prepare the claimed row, send, record the
result) all run in that one transaction today; claiming and committing first, sending
outside any transaction and recording in a second `transaction()` is a change to those
passes' `send_one`/`deliver_one` alone, not to this module.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, exists, select

from dealroom.config import Config
from dealroom.db.session import Database
from dealroom.services.outbox import Broker
from dealroom.services.uow import UnitOfWork, session_scope, transaction

Row = TypeVar("Row")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Queue(Generic[Row]):
    """A table of rows that come due: `due(now)` is the condition of the rows due at `now`,
    `order` the order in which an index reads them, oldest first."""

    model: type[Row]
    due: Callable[[datetime], ColumnElement[bool]]
    order: tuple[Any, ...]

    def claim_statement(self, now: datetime, *also: ColumnElement[bool]) -> Select[Row]:
        """The oldest row due at `now` that nobody holds (and that meets `also`), locked."""
        return (
            select(self.model)
            .where(self.due(now), *also)
            .order_by(*self.order)
            .limit(1)
            .with_for_update(skip_locked=True)
        )

    def any_due(self, db: Database, now: datetime) -> bool:
        """Whether a row is due, read without the write lock: most passes find nothing,
        and need no writer's turn on SQLite (nor a transport or client) to learn it."""
        with session_scope(db, write=False) as session:
            return bool(session.scalar(select(exists().where(self.due(now)))))


def claim_one(
    db: Database,
    claim: Select[Row],
    work: Callable[[UnitOfWork, Row], Result],
    *,
    config: Config | None = None,
    now: datetime | None = None,
    broker: Broker | None = None,
    user_agent: str | None = None,
) -> Result | None:
    """Claim the row `claim` selects and `work` on it in one transaction of its own,
    committed through the commit path when `work` returns and rolled back if it raises.
    None when no row was free to claim."""
    with transaction(db, config=config, now=now, broker=broker, user_agent=user_agent) as uow:
        row = uow.session.execute(claim).scalar_one_or_none()
        if row is None:
            return None  # it only read: the commit keeps the prepared statements (db/session.py)
        return work(uow, row)


@dataclass
class Drained:
    """What draining a queue did: how many rows ended in each outcome."""

    outcomes: Counter[str] = field(default_factory=Counter)
    #: Stopped at its time budget with rows maybe still due (the worker comes back at once).
    cut_short: bool = False


def drain(
    step: Callable[[], str | None],
    *,
    until: float | None = None,
    stop: threading.Event | None = None,
    halt: Collection[str] = (),
    first_free: bool = False,
) -> Drained:
    """Call `step` (claim one row and work on it: its outcome, None when no row is left)
    until no row is left, `stop` is set, an outcome in `halt` comes back (the server is
    down: stop hammering it), or the `time.monotonic()` instant `until` has passed.

    The budget is checked before each claim. With `first_free` the first claim is made
    whatever the budget: a pass that spends its budget before it drains (the webhook pass
    fans out new events first) still moves one row each time."""
    result = Drained()
    claimed = 0
    while stop is None or not stop.is_set():
        if until is not None and (claimed or not first_free) and time.monotonic() >= until:
            result.cut_short = True
            break
        outcome = step()
        if outcome is None:
            break
        claimed += 1
        result.outcomes[outcome] += 1
        if outcome in halt:
            break
    return result
