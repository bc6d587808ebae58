"""The unit of work and THE commit path: every transaction of dealroom goes through here.

`transaction()` is what every edge opens (an API request, a web form, the worker, the
command line, tests, benchmarks): one session, its clock reading, and an outbox of what to
publish after commit. Services receive the `UnitOfWork` and only flush. When the block
ends, the commit path runs in this order:

1. number the feed: the events this transaction held back are numbered after the feed's
   head and inserted, with the bell items and emails held with them (`feed.number_feed`,
   which takes the feed lock);
2. announce: the broker announces the outbox inside the transaction (PostgreSQL's NOTIFY is
   delivered with the COMMIT and dropped by a rollback);
3. COMMIT;
4. publish: the outbox goes to the in-process subscribers and the live streams.

If the block raises, everything is rolled back, nothing held is written and nothing is
published. Nothing else in `src/` commits (tests/test_architecture.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db.models import IdempotencyKey
from dealroom.db.session import Database
from dealroom.services import feed
from dealroom.services.outbox import Broker, OutboxItem


@dataclass(frozen=True)
class IdempotentRequest:
    """A write that came with an `Idempotency-Key`: its answer is stored under the key."""

    user_id: str
    key: str
    method: str
    path: str
    request_hash: str


@dataclass
class UnitOfWork:
    session: Session
    now: datetime
    config: Config
    ip: str | None = None
    user_agent: str | None = None
    outbox: list[OutboxItem] = field(default_factory=list)
    idempotency: IdempotentRequest | None = None

    def remember(self, body: str, status_code: int) -> None:
        """Store the answer `body` under the request's Idempotency-Key, if it has one, in the
        same transaction as the writes it answers for."""
        if self.idempotency is None:
            return
        request = self.idempotency
        self.session.add(
            IdempotencyKey(
                user_id=request.user_id,
                key=request.key,
                method=request.method,
                path=request.path,
                request_hash=request.request_hash,
                status_code=status_code,
                response_body=body,
                created_at=self.now,
            )
        )

    def commit(self, broker: Broker | None = None) -> None:
        """Number the feed, announce the outbox (with a broker), COMMIT. `transaction()`
        calls it; a test that interleaves two transactions by hand may too."""
        feed.number_feed(self.session)
        if broker is not None and self.outbox:
            broker.announce(self.session, self.outbox)
        self.session.commit()

    def rollback(self) -> None:
        """Roll back; what the transaction held back for the feed is dropped with it."""
        feed.forget_held(self.session)
        self.session.rollback()


@contextmanager
def transaction(
    db: Database,
    *,
    config: Config | None = None,
    now: datetime | None = None,
    write: bool = True,
    broker: Broker | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Iterator[UnitOfWork]:
    """One transaction: committed through the commit path when the block ends (a block
    that only read commits too: on PostgreSQL a rollback costs the connection its prepared
    statements, db/session.py), rolled back if it raises. After a successful commit the
    outbox is published to `broker`. `now` defaults to the system clock's reading."""
    session = db.session(write=write)
    uow = UnitOfWork(
        session=session,
        now=now if now is not None else datetime.now(UTC),
        config=config if config is not None else Config(),
        ip=ip,
        user_agent=user_agent,
    )
    try:
        yield uow
        uow.commit(broker)
    except BaseException:
        uow.rollback()
        raise
    finally:
        session.close()
    if broker is not None and uow.outbox:
        broker.publish(uow.outbox)


@contextmanager
def session_scope(db: Database, *, write: bool = True) -> Iterator[Session]:
    """`transaction()` for code that needs only its session (reading, or writing rows that
    hold no events): committed through the same commit path, rolled back on error."""
    with transaction(db, write=write) as uow:
        yield uow.session
