"""Schemas of the bell (`/v1/me/notifications`) and of the live streams' events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

#: Ids one request may mark read.
MAX_IDS = 500


class NotificationRead(BaseModel):
    """A bell item: what happened (`name`, `template`), on which deal, and its details."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str = Field(description="The notification, e.g. `counter-received`.")
    template: str = Field(description="The template that renders it (email, bell text).")
    deal_id: str | None
    payload: dict[str, Any] = Field(description="`deal_ref`, `state`, `transition` and more.")
    created_at: datetime
    read_at: datetime | None
    seen_live_at: datetime | None = Field(
        description="When it was first pushed to an open `/v1/me/stream` of the user."
    )


class NotificationPage(BaseModel):
    items: list[NotificationRead] = Field(description="Newest first.")
    unread_count: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class NotificationsReadCreate(BaseModel):
    """Mark notifications read: `{"ids": [...]}` or `{"all": true}`."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"ids": [41, 42]}, {"all": True}]},
    )

    # Bounded to BIGINT so an absurd id is a 422, not a database overflow.
    ids: list[Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, max_length=MAX_IDS
    )
    all_: StrictBool | None = Field(default=None, alias="all")

    @model_validator(mode="after")
    def _one_of(self) -> NotificationsReadCreate:
        if (self.ids is None) == (self.all_ is None):
            raise ValueError('give either "ids" or "all", not both and not neither')
        if self.all_ is False:
            raise ValueError('"all" can only be true')
        return self


class UnreadCountRead(BaseModel):
    unread_count: int
