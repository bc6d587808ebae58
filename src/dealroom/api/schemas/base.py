"""What every schema of the API builds on: the base of inputs, the base of rendered answers,
how a timestamp is written, and the validators more than one feature uses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from dealroom.domain import timestamps

#: A point in time in an answer, written as everywhere else (`domain.timestamps.iso`):
#: `2026-02-01T09:00:00.000000Z`. The OpenAPI document shows the pattern.
Timestamp = Annotated[
    datetime,
    PlainSerializer(timestamps.iso, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": timestamps.PATTERN,
            "examples": [timestamps.EXAMPLE],
        }
    ),
]


class Input(BaseModel):
    """A request body: a field the API does not know is refused (422), never ignored."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """An answer a route renders itself (`services.views.deal_json`, `feed.event_json` …)
    and documents here; it keeps fields a renderer adds before the schema has them
    (extra="allow")."""

    model_config = ConfigDict(extra="allow")


def known_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone such as Asia/Riyadh") from None
    return value
