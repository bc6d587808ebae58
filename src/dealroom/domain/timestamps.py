"""How a timestamp is written, everywhere: ISO-8601 in UTC, microseconds, a `Z`.

    2026-02-01T09:00:00.000000Z

Every answer, stream frame, webhook body, export, event payload and page writes time with
`iso`. The form is not free to change: the audit chain hashes each event's `created_at`
written exactly so (services/audit/chain.py), and every stored chain was hashed that way. Fixed
width has a bonus: two such strings sort as text in time order.

It lives in the domain because the domain writes timestamps too (quote versions, the data
of a move) and may import only itself; every layer above can reach it here.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: What `iso` writes, as a regular expression (the OpenAPI document shows it).
PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
EXAMPLE = "2026-02-01T09:00:00.000000Z"


def iso(when: datetime) -> str:
    """`when` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
