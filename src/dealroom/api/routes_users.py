"""Users: an admin adds them; anyone signed in reads the caller's own account and others'
public profiles."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dealroom.api.schemas import PublicProfileRead, TrustRead, UserCreate, UserRead
from dealroom.edge.caller import CurrentUser, require_role
from dealroom.edge.idempotency import Idempotent
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW, answer
from dealroom.services import accounts
from dealroom.services.trust import trust_profile

router = APIRouter(prefix="/v1", tags=["users"], responses=NEEDS_TOKEN)


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    dependencies=[Idempotent],
    responses={
        403: {"description": "The caller is not an admin (NEG-008)."},
        409: {"description": "The email is taken (NEG-014)."},
    },
)
def create_user(body: UserCreate, uow: UoW, user: CurrentUser) -> Response:
    """Add a user (admins only). Roles are `admin` and `operator`; everyone can buy and sell."""
    require_role(user, "admin")
    created = accounts.create_user(
        uow.session,
        email=body.email,
        name=body.name,
        password=body.password,
        now=uow.now,
        organization=body.organization,
        roles=body.roles,
        kyc_verified=body.kyc_verified,
        plan=body.plan,
        timezone=body.timezone,
    )
    return answer(uow, UserRead.model_validate(created).model_dump(mode="json"), 201)


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    """The caller's own account."""
    return UserRead.model_validate(user)


@router.get(
    "/users/{user_id}",
    response_model=PublicProfileRead,
    responses={404: {"description": "No such user (NEG-011)."}},
)
def public_profile(user_id: str, uow: UoW, _caller: CurrentUser) -> PublicProfileRead:
    """A user's public profile and trust facts: account age, deals closed, completion rate
    and median response time. Never the email or roles."""
    target = accounts.get_user(uow.session, user_id)
    trust = trust_profile(uow.session, target.id, uow.now)
    return PublicProfileRead(
        id=target.id,
        name=target.name,
        organization=target.organization,
        kyc_verified=target.kyc_verified,
        created_at=target.created_at,
        trust=TrustRead.model_validate(trust),
    )
