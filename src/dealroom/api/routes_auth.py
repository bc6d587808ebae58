"""POST /v1/auth/token: trade an email and password for a bearer token."""

from __future__ import annotations

from fastapi import APIRouter

from dealroom.api.schemas import TokenCreate, TokenRead, UserRead
from dealroom.edge.uow import UoW
from dealroom.security import issue_token, signing_key
from dealroom.services import accounts

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenRead,
    responses={
        401: {"description": "Wrong email or password (NEG-012)."},
        403: {"description": "The account is blocked (NEG-009)."},
    },
)
def create_token(body: TokenCreate, uow: UoW) -> TokenRead:
    """A signed bearer token, valid for `DEALROOM_TOKEN_TTL` seconds (12 h by default).

    Send it as `Authorization: Bearer <token>`. An unknown email and a wrong password get
    the same answer.
    """
    user = accounts.authenticate(uow.session, body.email, body.password)
    key = signing_key(uow.session, uow.config.secret_key)
    token, expires = issue_token(
        key, user.id, now=uow.now, ttl_seconds=uow.config.token_ttl_seconds
    )
    return TokenRead(access_token=token, expires_at=expires, user=UserRead.model_validate(user))
