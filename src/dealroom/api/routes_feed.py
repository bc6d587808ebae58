"""GET /v1/events: the global feed of every event the caller may see, for integrators who
poll. Ordered by `feed_seq`, which is assigned in commit order (services/audit/chain.py), so
resuming `after` the last position seen never skips an event."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dealroom.api.schemas import EventRead, FeedPage
from dealroom.edge.caller import CurrentUser
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW
from dealroom.services.feed import event_json, events_for

router = APIRouter(prefix="/v1", tags=["events"], responses=NEEDS_TOKEN)


@router.get("/events", response_model=FeedPage)
def feed(
    uow: UoW,
    user: CurrentUser,
    after: Annotated[int, Query(ge=0, le=2**62, description="The last `feed_seq` seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FeedPage:
    """Events after feed position `after`, oldest first: a party sees its deals' events,
    operators and admins see all. Each event keeps its per-deal `seq` and adds its
    `feed_seq`; poll again with `after=next_after`."""
    rows = events_for(uow.session, user, after, limit=limit)
    return FeedPage(
        items=[EventRead.model_validate(event_json(e)) for e in rows],
        next_after=rows[-1].feed_seq if rows else after,
    )
