"""The request's unit of work: one `services.uow.transaction()` per request, behind the
write gate, with the request's clock reading, address and user agent.

An `IntegrityError` from a write that carried an `Idempotency-Key` may be a concurrent
retry that stored its answer first; the stored answer is then replayed (`Replay`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError

from dealroom.db.models import IdempotencyKey
from dealroom.db.session import Database
from dealroom.services.uow import UnitOfWork, transaction


class Replay(Exception):
    """A stored answer to send again (Idempotency-Key seen before)."""

    def __init__(self, status_code: int, body: str) -> None:
        self.status_code = status_code
        self.body = body


class WriteGate:
    """At most `limit` write transactions of this process at once (0: no limit).

    A Python process runs one thread at a time. Every write transaction open in it beyond
    what the cores can run sits idle in its transaction, holding its row locks (and, at
    commit, the feed lock) while it waits for the interpreter, and every other writer
    waits behind it. Queuing before BEGIN costs nothing held.
    """

    def __init__(self, limit: int) -> None:
        self._turns = threading.BoundedSemaphore(limit) if limit > 0 else None

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._turns is None:
            yield
            return
        self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    with request_transaction(
        request, write=request.method not in ("GET", "HEAD", "OPTIONS")
    ) as uow:
        yield uow


@contextmanager
def request_transaction(request: Request, *, write: bool) -> Iterator[UnitOfWork]:
    """The request's transaction: committed when the block ends, rolled back if it raises;
    a write waits for its turn at the write gate first."""
    if not write:
        with _transaction(request, write=False) as uow:
            yield uow
        return
    gate: WriteGate = request.app.state.write_gate
    with gate.turn(), _transaction(request, write=True) as uow:
        yield uow


@contextmanager
def _transaction(request: Request, *, write: bool) -> Iterator[UnitOfWork]:
    db: Database = request.app.state.db
    opened: UnitOfWork | None = None
    try:
        with transaction(
            db,
            config=request.app.state.config,
            now=request.app.state.clock.now(),
            write=write,
            broker=request.app.state.broker,
            ip=request.client.host if request.client else None,
            user_agent=(request.headers.get("user-agent") or "")[:400] or None,
        ) as uow:
            opened = uow
            yield uow
    except IntegrityError:
        stored = _stored_answer(db, opened)
        if stored is None:
            raise
        raise Replay(stored.status_code, stored.response_body) from None


def _stored_answer(db: Database, uow: UnitOfWork | None) -> IdempotencyKey | None:
    if uow is None or uow.idempotency is None:
        return None
    with transaction(db, write=False) as reader:
        return reader.session.get(IdempotencyKey, (uow.idempotency.user_id, uow.idempotency.key))


UoW = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def to_json(payload: Any) -> str:
    """Compact JSON of an answer. Answers are built from JSON types already; only one that
    is not (a Decimal, a datetime …) pays for FastAPI's encoder, which walks every value."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(jsonable_encoder(payload), separators=(",", ":"), ensure_ascii=False)


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(to_json(payload), status_code=status_code, media_type="application/json")


def answer(uow: UnitOfWork, payload: Any, status_code: int = 200) -> Response:
    """Answer a write with `payload`; stored under the request's Idempotency-Key, if any,
    in the same transaction as the writes it answers for."""
    body = to_json(payload)
    uow.remember(body, status_code)
    return Response(content=body, status_code=status_code, media_type="application/json")
