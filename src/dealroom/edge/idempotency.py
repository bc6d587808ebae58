"""`Idempotency-Key`: a retried write with the same key and body gets its first answer
again and changes nothing; the same key with another body is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select, text

from dealroom.db.models import IdempotencyKey
from dealroom.domain.errors import InvalidRequest, NotAuthenticated
from dealroom.edge.caller import SIGN_IN, CurrentUser, bearer, caller_of
from dealroom.edge.uow import Replay, UoW, request_transaction
from dealroom.services.accounts import Caller
from dealroom.services.uow import IdempotentRequest, UnitOfWork


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def idempotent(
    request: Request, uow: UoW, user: CurrentUser, body: Annotated[bytes, Depends(_raw_body)]
) -> None:
    """Honour `Idempotency-Key`: replay the stored answer of a retried request."""
    check_idempotency(request, uow, user.id, body)


Idempotent = Depends(idempotent)


def check_idempotency(request: Request, uow: UnitOfWork, user_id: str, body: bytes) -> None:
    """Raise `Replay` with the stored answer if this key was answered before; else note
    the key, for `edge.uow.answer` to store this request's answer under it."""
    key = request.headers.get("idempotency-key")
    if not key:
        return
    if len(key) > 200:
        raise InvalidRequest("Idempotency-Key is at most 200 characters.", field="Idempotency-Key")
    query = request.url.query.encode()
    where = f"{request.method} {request.url.path}"
    digest = hashlib.sha256(where.encode() + b"?" + query + b"\n" + body).hexdigest()
    if uow.session.get_bind().dialect.name == "postgresql":
        # Concurrent retries of one key queue here; the later one then sees the answer.
        uow.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"{user_id}:{key}"},
        )
    stored = uow.session.execute(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    ).scalar_one_or_none()
    if stored is not None:
        if stored.request_hash != digest:
            raise InvalidRequest(
                "This Idempotency-Key was used for a different request; use a new key.",
                field="Idempotency-Key",
                rule="IDEMPOTENCY",
            )
        raise Replay(stored.status_code, stored.response_body)
    uow.idempotency = IdempotentRequest(
        user_id=user_id, key=key, method=request.method, path=request.url.path,
        request_hash=digest,
    )  # fmt: skip


def in_one_trip(
    request: Request, body: bytes, work: Callable[[UnitOfWork, Caller], Response], *,
    replayable: bool,
) -> Response:  # fmt: skip
    """A write endpoint's whole request in one call, for `run_in_threadpool`: the
    transaction, the caller's token, `Idempotency-Key` (if `replayable`), the work and the
    commit. As dependencies these are five trips between the event loop and the thread
    pool, at about 0.2 ms of CPU each (bench/README.md); the busiest write routes use this."""
    with request_transaction(request, write=True) as uow:
        caller = caller_of(uow, bearer(request))
        if caller is None:
            raise NotAuthenticated(SIGN_IN, rule="AUTH")
        if replayable:
            check_idempotency(request, uow, caller.id, body)
        return work(uow, caller)
