"""Passwords (argon2id) and bearer tokens (HS256 JWT with expiry)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealroom.db.models import AppSecret
from dealroom.domain.errors import NotAuthenticated

_hasher = PasswordHasher()
ALGORITHM = "HS256"
ISSUER = "dealroom"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


#: A hash to verify against when the email is unknown, so timing does not reveal accounts.
DUMMY_HASH = _hasher.hash(secrets.token_hex(8))


def signing_key(session: Session, configured: str | None) -> str:
    """The configured key, else one generated once and kept in the database for every
    process that shares it."""
    if configured:
        return configured
    row = session.execute(select(AppSecret).where(AppSecret.name == "token")).scalar_one_or_none()
    if row is not None:
        return row.value
    value = secrets.token_urlsafe(48)
    try:
        with session.begin_nested():
            session.add(AppSecret(name="token", value=value))
    except IntegrityError:
        row = session.execute(select(AppSecret).where(AppSecret.name == "token")).scalar_one()
        return row.value
    return value


def issue_token(key: str, user_id: str, *, now: datetime, ttl_seconds: int) -> tuple[str, datetime]:
    expires = now + timedelta(seconds=ttl_seconds)
    claims = {
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "iss": ISSUER,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), expires


def read_token(key: str, token: str, *, now: datetime) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("The bearer token is not valid.", rule="AUTH") from exc
    if claims["exp"] <= int(now.timestamp()):
        raise NotAuthenticated("The bearer token has expired; sign in again.", rule="AUTH")
    return claims
