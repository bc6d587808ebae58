"""The body of every error answer (`application/problem+json`, dealroom.edge.problems)."""

from __future__ import annotations

from typing import Any

from dealroom.api.schemas.base import Output


class ProblemRead(Output):
    """RFC 9457 problem details, with a stable `code` and context fields."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    rule: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
    deal_id: str | None = None
    current_version: int | None = None
