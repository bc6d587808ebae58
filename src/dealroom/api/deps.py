"""Request dependencies: the unit of work (one transaction per request), the caller,
and idempotent replays."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from dealroom.db.models import IdempotencyKey, User
from dealroom.db.session import Database
from dealroom.domain.errors import InvalidRequest, NotAuthenticated, NotAuthorized
from dealroom.security import read_token, signing_key
from dealroom.services.uow import UnitOfWork


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
    with unit_of_work(request, write=request.method not in ("GET", "HEAD", "OPTIONS")) as uow:
        yield uow


@contextmanager
def unit_of_work(request: Request, *, write: bool) -> Iterator[UnitOfWork]:
    """The request's transaction: committed when the block ends, rolled back if it raises;
    a write waits for its turn at the write gate first."""
    if not write:
        with _uow(request, write=False) as uow:
            yield uow
        return
    gate: WriteGate = request.app.state.write_gate
    with gate.turn(), _uow(request, write=True) as uow:
        yield uow


@dataclass(frozen=True)
class Caller:
    """A caller whose bearer token verified. Their row is read when it is needed (a move
    reads it with the deal, `deals.get_deal_view`) and vouched for by `user`."""

    claims: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.claims["sub"])

    def user(self, uow: UnitOfWork, row: User | None = None) -> User:
        """The caller's row (`row` if it was read already): it must still exist and be
        older than the token."""
        if row is None:
            row = uow.session.get(User, self.id)
        return _vouch(row, self.claims)


def in_one_trip(
    request: Request, body: bytes, work: Callable[[UnitOfWork, Caller], Response], *,
    replayable: bool,
) -> Response:  # fmt: skip
    """A write endpoint's whole request in one call, for `run_in_threadpool`: the
    transaction, the caller's token, `Idempotency-Key` (if `replayable`), the work and the
    commit. As dependencies these are five trips between the event loop and the thread
    pool, at about 0.2 ms of CPU each (bench/README.md); the busiest write routes use this."""
    with unit_of_work(request, write=True) as uow:
        claims = _claims(uow, _bearer(request))
        if claims is None:
            raise NotAuthenticated(SIGN_IN, rule="AUTH")
        caller = Caller(claims)
        if replayable:
            check_idempotency(request, uow, caller.id, body)
        return work(uow, caller)


@contextmanager
def _uow(request: Request, *, write: bool) -> Iterator[UnitOfWork]:
    db: Database = request.app.state.db
    session = db.session(write=write)
    uow = UnitOfWork(
        session=session,
        now=request.app.state.clock.now(),
        config=request.app.state.config,
        ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:400] or None,
    )
    try:
        yield uow
        uow.commit(request.app.state.broker)
    except IntegrityError:
        session.rollback()
        stored = _stored_answer(db, uow)
        if stored is None:
            raise
        raise Replay(stored.status_code, stored.response_body) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if uow.outbox:
        request.app.state.broker.publish(uow.outbox)


def _stored_answer(db: Database, uow: UnitOfWork) -> IdempotencyKey | None:
    if uow.idempotency is None:
        return None
    user_id, key, _, _ = uow.idempotency
    with db.transaction(write=False) as s:
        return s.get(IdempotencyKey, (user_id, key))


UoW = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query_params.get("access_token") or request.cookies.get("dealroom_token")


SIGN_IN = "Sign in first: send Authorization: Bearer <token> from POST /v1/auth/token."


def _claims(uow: UnitOfWork, token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    key = signing_key(uow.session, uow.config.secret_key)
    return read_token(key, token, now=uow.now)


def _vouch(user: User | None, claims: dict[str, Any]) -> User:
    if user is None or user.deleted_at is not None:
        raise NotAuthenticated("The account behind this token no longer exists.", rule="AUTH")
    if claims["iat"] < int(user.created_at.timestamp()) - 1:
        raise NotAuthenticated("The bearer token is not valid.", rule="AUTH")
    return user


def load_caller(uow: UnitOfWork, token: str | None) -> User | None:
    claims = _claims(uow, token)
    if claims is None:
        return None
    return _vouch(uow.session.get(User, claims["sub"]), claims)


def current_user(request: Request, uow: UoW) -> User:
    user = load_caller(uow, _bearer(request))
    if user is None:
        raise NotAuthenticated(SIGN_IN, rule="AUTH")
    return user


def optional_user(request: Request, uow: UoW) -> User | None:
    return load_caller(uow, _bearer(request))


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


def require_role(user: User, *roles: str) -> None:
    if not set(roles) & set(user.roles or []):
        raise NotAuthorized(f"This needs the {' or '.join(roles)} role.", rule="ROLE")


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def idempotent(
    request: Request, uow: UoW, user: CurrentUser, body: Annotated[bytes, Depends(_raw_body)]
) -> None:
    """Honour `Idempotency-Key`: replay the stored answer of a retried request."""
    check_idempotency(request, uow, user.id, body)


def check_idempotency(request: Request, uow: UnitOfWork, user_id: str, body: bytes) -> None:
    """Raise `Replay` with the stored answer if this key was answered before; else note
    the key, for `UnitOfWork.remember` to store this request's answer under it."""
    key = request.headers.get("idempotency-key")
    if not key:
        return
    if len(key) > 200:
        raise InvalidRequest("Idempotency-Key is at most 200 characters.", field="Idempotency-Key")
    where = f"{request.method} {request.url.path}"
    query = request.url.query.encode()
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
    uow.idempotency = (user_id, key, where, digest)


Idempotent = Depends(idempotent)
