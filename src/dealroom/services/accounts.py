"""Account use cases: sign in, add a user, read a user's public trust profile.

Services flush, never commit: the request (or the command line) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealroom.db import models as m
from dealroom.domain.errors import BuyerBlocked, Duplicate, NotAuthenticated, NotFound
from dealroom.security import DUMMY_HASH, hash_password, verify_password

#: One answer for an unknown email and a wrong password, so neither leaks which it was.
BAD_CREDENTIALS = "Wrong email or password."
#: Staff run the marketplace: they see every deal, act in it as the operator, and manage
#: webhooks and processes. (Editing another's listing is narrower: `listings`.)
STAFF_ROLES = ("admin", "operator")


def is_staff(user: m.User) -> bool:
    return not set(STAFF_ROLES).isdisjoint(user.roles or ())


def normalize_email(email: str) -> str:
    return email.strip().lower()


def authenticate(session: Session, email: str, password: str) -> m.User:
    """The user with these credentials; NEG-012 otherwise, in the same time either way."""
    user = session.execute(
        select(m.User).where(m.User.email == normalize_email(email))
    ).scalar_one_or_none()
    if user is None or user.deleted_at is not None:
        verify_password(DUMMY_HASH, password)  # spend the same time as a real check
        raise NotAuthenticated(BAD_CREDENTIALS, rule="AUTH")
    if not verify_password(user.password_hash, password):
        raise NotAuthenticated(BAD_CREDENTIALS, rule="AUTH")
    if user.blocked:
        raise BuyerBlocked(
            "This account is blocked; contact the marketplace operator.", rule="ACCOUNT"
        )
    return user


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    password: str,
    now: datetime,
    organization: str | None = None,
    roles: Sequence[str] = (),
    kyc_verified: bool = False,
    plan: str = "free",
    timezone: str = "UTC",
) -> m.User:
    """Add a user; NEG-014 when the email is taken (compared case-insensitively)."""
    address = normalize_email(email)
    taken = session.execute(select(m.User.id).where(m.User.email == address)).first()
    if taken is not None:
        raise Duplicate(f"A user with the email {address} already exists.", field="email")
    user = m.User(
        email=address,
        name=name.strip(),
        organization=(organization or "").strip() or None,
        password_hash=hash_password(password),
        roles=sorted(set(roles)),
        kyc_verified=kyc_verified,
        plan=plan,
        timezone=timezone,
        locale="en",
        blocked=False,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:  # a concurrent request added the same email first
        raise Duplicate(f"A user with the email {address} already exists.", field="email") from None
    return user


@dataclass(frozen=True)
class Caller:
    """Who a verified bearer token says is calling (the edge checks the token's signature
    and expiry): the user's id and when the token was issued. The account behind it is
    checked when its row is read (`vouch`), often together with the deal a move reads."""

    id: str
    issued_at: int

    def user(self, session: Session, row: m.User | None = None) -> m.User:
        """The caller's row (`row` if it was read already), vouched for."""
        if row is None:
            row = session.get(m.User, self.id)
        return vouch(row, self.issued_at)


def vouch(user: m.User | None, issued_at: int) -> m.User:
    """The account behind a token: it must still exist and be older than the token (a
    token issued before an account of the same id was created is not its)."""
    if user is None or user.deleted_at is not None:
        raise NotAuthenticated("The account behind this token no longer exists.", rule="AUTH")
    if issued_at < int(user.created_at.timestamp()) - 1:
        raise NotAuthenticated("The bearer token is not valid.", rule="AUTH")
    return user


def get_user(session: Session, user_id: str) -> m.User:
    """A user who has not been deleted; NEG-011 otherwise."""
    user = session.get(m.User, user_id) if 0 < len(user_id) <= 36 else None
    if user is None or user.deleted_at is not None:
        raise NotFound("There is no such user.", rule="USER")
    return user
