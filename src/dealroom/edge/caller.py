"""The caller: a bearer token (header, the SSE routes' query string, or the web's session
cookie) checked here, at the edge; the account behind it is vouched for by
`services.accounts`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from dealroom.db.models import User
from dealroom.domain.errors import NotAuthenticated, NotAuthorized
from dealroom.edge.uow import UoW
from dealroom.security import read_token, signing_key
from dealroom.services.accounts import STAFF_ROLES, Caller, vouch
from dealroom.services.uow import UnitOfWork

SIGN_IN = "Sign in first: send Authorization: Bearer <token> from POST /v1/auth/token."


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query_params.get("access_token") or request.cookies.get("dealroom_token")


def claims_of(uow: UnitOfWork, token: str | None) -> dict[str, Any] | None:
    """The claims of a token whose signature and expiry check out; None without a token."""
    if not token:
        return None
    key = signing_key(uow.session, uow.config.secret_key)
    return read_token(key, token, now=uow.now)


def caller_of(uow: UnitOfWork, token: str | None) -> Caller | None:
    claims = claims_of(uow, token)
    if claims is None:
        return None
    return Caller(id=str(claims["sub"]), issued_at=int(claims["iat"]))


def load_caller(uow: UnitOfWork, token: str | None) -> User | None:
    caller = caller_of(uow, token)
    if caller is None:
        return None
    return vouch(uow.session.get(User, caller.id), caller.issued_at)


def current_user(request: Request, uow: UoW) -> User:
    user = load_caller(uow, bearer(request))
    if user is None:
        raise NotAuthenticated(SIGN_IN, rule="AUTH")
    return user


def optional_user(request: Request, uow: UoW) -> User | None:
    return load_caller(uow, bearer(request))


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


def require_role(user: User, *roles: str) -> None:
    if not set(roles) & set(user.roles or []):
        raise NotAuthorized(f"This needs the {' or '.join(roles)} role.", rule="ROLE")


def require_staff(user: User) -> None:
    require_role(user, *STAFF_ROLES)
