"""GET/PUT /v1/me/preferences: how the caller hears about their deals by email."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dealroom.api.schemas import PreferencesRead, PreferencesUpdate
from dealroom.edge.caller import CurrentUser
from dealroom.edge.idempotency import Idempotent
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW, answer
from dealroom.services.notifications import preferences

router = APIRouter(prefix="/v1", tags=["notifications"], responses=NEEDS_TOKEN)


def _read(p: preferences.Preferences) -> PreferencesRead:
    return PreferencesRead.model_validate(p, from_attributes=True)


@router.get("/me/preferences", response_model=PreferencesRead)
def get_preferences(uow: UoW, user: CurrentUser) -> PreferencesRead:
    """The caller's email preferences; until set: immediate email, digest hour 8, the
    account's timezone."""
    return _read(preferences.get(uow, user))


@router.put(
    "/me/preferences",
    response_model=PreferencesRead,
    dependencies=[Idempotent],
    responses={422: {"description": "Unknown mode, an hour outside 0-23 or an unknown timezone."}},
)
def put_preferences(body: PreferencesUpdate, uow: UoW, user: CurrentUser) -> Response:
    """Choose `immediate` (an email per notification), `digest` (one summary a day at
    `digest_hour` in `timezone`, of what you have not seen yet) or `off` (the bell only).
    Fields left out keep their value."""
    updated = preferences.update(
        uow, user, email=body.email, digest_hour=body.digest_hour, timezone=body.timezone
    )
    return answer(uow, _read(updated).model_dump(mode="json"))
