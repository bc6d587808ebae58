"""People with bearer tokens, written straight to the database (no password check to pay
for: one argon2 hash serves them all)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.security import hash_password, issue_token
from dealroom.services.uow import session_scope

#: Everyone's password, for the sign-in forms.
PASSWORD = "correct horse battery"


@cache
def password_hash() -> str:
    """PASSWORD hashed once: argon2 is slow on purpose."""
    return hash_password(PASSWORD)


@dataclass
class Person:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_person(
    db: Database,
    email: str,
    *,
    secret: str,
    now: datetime | None = None,
    name: str | None = None,
    organization: str | None = None,
    roles: tuple[str, ...] = (),
    kyc_verified: bool = True,
    plan: str = "paid",
    age_days: int = 365,
    token_seconds: int = 12 * 3600,
) -> Person:
    """A user (identity verified, on the paid plan, a year old unless told) and a token
    signed with `secret`, valid for `token_seconds` from `now`."""
    now = now or datetime.now(UTC)
    with session_scope(db) as s:
        user = m.User(
            email=email.lower(),
            name=name or email.split("@")[0].title(),
            organization=organization,
            password_hash=password_hash(),
            roles=list(roles),
            kyc_verified=kyc_verified,
            plan=plan,
            timezone="UTC",
            created_at=now - timedelta(days=age_days),
        )
        s.add(user)
        s.flush()
        uid = user.id
    token, _ = issue_token(secret, uid, now=now, ttl_seconds=token_seconds)
    return Person(uid, email.lower(), token)
