"""The bell: `GET /v1/me/notifications` and `POST /v1/me/notifications/read`.

New items are also pushed live on `/v1/me/stream` (routes_stream.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dealroom.api.schemas import (
    NotificationPage,
    NotificationRead,
    NotificationsReadCreate,
    UnreadCountRead,
)
from dealroom.edge.caller import CurrentUser
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW
from dealroom.services.notifications import bell

router = APIRouter(prefix="/v1/me", tags=["notifications"], responses=NEEDS_TOKEN)


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="List my notifications",
    description="The caller's bell items, newest first, with the unread count. Page with "
    "`limit` and the `next_cursor` of the previous page; `unread=true` lists unread ones only.",
)
def list_notifications(
    uow: UoW,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    unread: bool = False,
) -> NotificationPage:
    page = bell.list_notifications(
        uow.session, user, limit=limit, cursor=cursor, unread_only=unread
    )
    return NotificationPage(
        items=[NotificationRead.model_validate(n) for n in page.items],
        unread_count=page.unread_count,
        next_cursor=page.next_cursor,
    )


@router.post(
    "/notifications/read",
    response_model=UnreadCountRead,
    summary="Mark notifications read",
    description='`{"ids": [...]}` marks those of the caller\'s notifications read (ids of '
    'anyone else\'s are ignored); `{"all": true}` marks every one. Answers the unread count, '
    "which open `/v1/me/stream`s of the caller also receive (`event: unread`).",
)
def mark_read(body: NotificationsReadCreate, uow: UoW, user: CurrentUser) -> UnreadCountRead:
    count = bell.mark_read(uow, user, ids=body.ids, everything=bool(body.all_))
    return UnreadCountRead(unread_count=count)
