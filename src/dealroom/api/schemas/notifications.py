"""Notifications: the bell (`/v1/me/notifications`) and how a user hears of them by email
(`/v1/me/preferences`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from dealroom.api.schemas.base import Input, Timestamp, known_timezone

#: Ids one request may mark read.
MAX_IDS = 500

EmailMode = Literal["immediate", "digest", "off"]


# --- the bell -----------------------------------------------------------------------------


class NotificationRead(BaseModel):
    """A bell item: what happened (`name`, `template`), on which deal, and its details."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str = Field(description="The notification, e.g. `counter-received`.")
    template: str = Field(description="The template that renders it (email, bell text).")
    deal_id: str | None
    payload: dict[str, Any] = Field(description="`deal_ref`, `state`, `transition` and more.")
    created_at: Timestamp
    read_at: Timestamp | None
    seen_live_at: Timestamp | None = Field(
        description="When it was first pushed to an open `/v1/me/stream` of the user."
    )


class NotificationPage(BaseModel):
    items: list[NotificationRead] = Field(description="Newest first.")
    unread_count: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class NotificationsReadCreate(Input):
    """Mark notifications read: `{"ids": [...]}` or `{"all": true}`."""

    model_config = ConfigDict(
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


# --- preferences --------------------------------------------------------------------------


class PreferencesRead(BaseModel):
    email: EmailMode = Field(
        description="`immediate`: an email per notification; `digest`: one morning summary "
        "a day; `off`: the bell only."
    )
    digest_hour: int = Field(description="Local hour (0-23) at which the digest goes out.")
    timezone: str = Field(description="IANA timezone of the digest hour, e.g. Asia/Riyadh.")
    next_digest_at: Timestamp | None = Field(
        description="When the next digest is due (UTC), in `digest` mode."
    )


class PreferencesUpdate(Input):
    """Fields left out keep their current value."""

    email: EmailMode | None = None
    digest_hour: Annotated[StrictInt, Field(ge=0, le=23)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "digest", "digest_hour": 8, "timezone": "Asia/Riyadh"}]
        }
    )

    _timezone = field_validator("timezone")(known_timezone)
