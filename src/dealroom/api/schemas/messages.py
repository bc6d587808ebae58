"""Messages in a deal room (`/v1/deals/{id}/messages`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from dealroom.api.schemas.base import Input, Output, Timestamp
from dealroom.domain.rules import MAX_MESSAGE


class MessageCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"body": "Can you confirm the warranty terms?"}]},
    )

    body: str = Field(..., min_length=1, max_length=MAX_MESSAGE)


class MessageRead(Output):
    id: str
    author_id: str
    body: str
    created_at: Timestamp


class MessagePage(Output):
    items: list[MessageRead]
    next_cursor: str | None = None
