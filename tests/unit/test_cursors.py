"""Cursors: one format for every paginated list, the deal list's, and the cursors given
out before it still read."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dealroom.domain.errors import InvalidRequest
from dealroom.services import cursors

AT = datetime(2026, 2, 1, 14, 15, 7, 123456, tzinfo=UTC)


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_time_and_id_cursor_is_the_deal_lists_format_byte_for_byte() -> None:
    cursor = cursors.encode(AT, "d-1")
    assert cursor == b64(json.dumps(["2026-02-01T14:15:07.123456Z", "d-1"], separators=(",", ":")))
    assert "=" not in cursor
    assert cursors.time_and_id(cursor) == (AT, "d-1")


def test_a_time_in_another_zone_comes_back_as_the_same_instant() -> None:
    elsewhere = AT.astimezone(timezone(timedelta(hours=-5)))
    assert cursors.time_and_id(cursors.encode(elsewhere, "x")) == (AT, "x")


def test_a_listing_cursor_from_before_the_one_format_still_reads() -> None:
    assert cursors.time_and_id(b64(f"{AT.isoformat()}|l-9")) == (AT, "l-9")


def test_a_position_cursor_round_trips_and_a_bare_number_from_before_still_reads() -> None:
    assert cursors.position(cursors.encode(1042)) == 1042
    assert cursors.position("1042") == 1042
    assert cursors.position(cursors.encode(0)) == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "", "!!!", "not-a-cursor", "bm9waXBl", b64("[]"), b64('["2026-02-01T14:15:07", "x"]'),
        b64('["2026-02-01T14:15:07Z", ""]'), b64('["2026-02-01T14:15:07Z", 7]'),
        b64('["yesterday", "x"]'), b64("2026-02-01T14:15:07|x"), b64("2026-02-01T14:15:07Z|"),
        b64('{"a": 1, "b": 2}'), "caf\u00e9",
    ],
)  # fmt: skip
def test_a_time_and_id_cursor_this_api_did_not_give_is_refused_on_the_cursor_field(
    cursor: str,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        cursors.time_and_id(cursor)
    assert refused.value.field == "cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "", "-1", "1.5", "\u00b2", "9" * 20, b64("[-1]"), b64("[true]"), b64('["7"]'),
        b64("[1, 2]"), b64(f"[{2**63}]"), cursors.encode(AT, "x"), "yesterday",
    ],
)  # fmt: skip
def test_a_position_cursor_this_api_did_not_give_is_refused_on_the_cursor_field(
    cursor: str,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        cursors.position(cursor)
    assert refused.value.field == "cursor"


def test_a_page_has_a_next_cursor_only_when_a_row_past_the_limit_was_read() -> None:
    rows = [(AT, "a"), (AT, "b"), (AT, "c")]
    shown, following = cursors.page(rows, 2, lambda r: r)
    assert shown == rows[:2]
    assert following is not None
    assert cursors.time_and_id(following) == (AT, "b")
    assert cursors.page(rows, 3, lambda r: r) == (rows, None)
    assert cursors.page([], 3, lambda r: r) == ([], None)
