"""The platform fee schedule: percent of the accepted total, by process and category.

Fees are listed beside the order's total, never folded into it (API.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dealroom.domain.quotes import money


def schedule(fees: dict[str, Any], *, process: str, category: str | None) -> list[dict[str, Any]]:
    """The most specific list wins: category, then process, then the default."""
    by_category = fees.get("category", {})
    if category and category in by_category:
        return list(by_category[category])
    by_process = fees.get("process", {})
    if process in by_process:
        return list(by_process[process])
    return list(fees.get("default", []))


def apply(
    entries: list[dict[str, Any]], total: Decimal | None, currency: str
) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        pct = Decimal(str(entry["percent"]))
        out.append(
            {
                "name": entry["name"],
                "payer": entry.get("payer", "seller"),
                "percent": str(pct),
                "amount": None if total is None else str(money(total * pct / 100, currency)),
                "currency": currency,
            }
        )
    return out
