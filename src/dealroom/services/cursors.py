"""The cursor of every paginated list: the sort key of the last row a page showed, which
the next page starts after.

To a client a cursor is opaque. It is the URL-safe base64 (unpadded) of the key as a
compact JSON array: `["2025-03-01T12:00:00.000000Z","<id>"]` for a list ordered by time
then id (deals, messages, listings), `[1042]` for one ordered by a number (notifications,
webhook deliveries). Cursors given out before this one format are still read: a listing's
`<iso time>|<id>` and the bare number of a notification or a delivery.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from dealroom.domain.errors import InvalidRequest
from dealroom.domain.timestamps import iso

T = TypeVar("T")
Key = tuple[datetime | str | int, ...]

#: Past any id or position this database gives out (BIGINT).
_MAX_POSITION = 2**63 - 1


def encode(*key: datetime | str | int) -> str:
    raw = json.dumps([iso(k) if isinstance(k, datetime) else k for k in key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def page(rows: list[T], limit: int, key: Callable[[T], Key]) -> tuple[list[T], str | None]:
    """The page of `rows`, read with `limit + 1` (the extra row only tells that another page
    follows), and the cursor of the next page (None on the last)."""
    shown = rows[:limit]
    return shown, encode(*key(shown[-1])) if len(rows) > limit else None


def time_and_id(cursor: str) -> tuple[datetime, str]:
    """The (aware time, id) key of a list ordered by time then id."""
    try:
        raw = _unwrap(cursor)
        if raw.startswith(b"["):
            at, row_id = json.loads(raw)
        else:  # a listing's cursor from before the one format
            at, _, row_id = raw.decode().partition("|")
        when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        if when.tzinfo is None or not isinstance(row_id, str) or not row_id:
            raise ValueError("naive time or no id")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise refused() from exc
    return when, row_id


def position(cursor: str) -> int:
    """The number a list ordered by a number (an id, a feed position) stopped at."""
    try:
        if cursor.isascii() and cursor.isdigit():  # from before the one format
            value: Any = int(cursor)
        else:
            (value,) = json.loads(_unwrap(cursor))
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("not a number")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise refused() from exc
    if not 0 <= value <= _MAX_POSITION:
        raise refused()
    return value


def refused() -> InvalidRequest:
    return InvalidRequest(
        "This cursor is not one this API gave out; start again without it.", field="cursor"
    )


def _unwrap(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
