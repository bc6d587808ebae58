"""Human references: DEAL-2026-0042, ORD-2026-0089 — per prefix and year, never reused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dealroom.db.models import Counter


def _bump(insert: Any) -> Any:
    return (
        insert(Counter)
        .values(name=bindparam("counter"), value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )


#: Built once per dialect (building the statement cost as much as running it).
_BUMP = {"postgresql": _bump(postgresql.insert), "sqlite": _bump(sqlite.insert)}


def next_ref(session: Session, prefix: str, now: datetime) -> str:
    name = f"{prefix}-{now.year}"
    dialect = session.get_bind().dialect.name
    stmt = _BUMP[dialect]
    if dialect == "postgresql":
        # A short transaction of its own: the counter row is locked for one statement, not
        # for the rest of the request (bench/api.py measured it as the hottest row lock).
        # A request that rolls back leaves a gap in the references; none is ever reused.
        with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[union-attr]
            value = conn.execute(stmt, {"counter": name}).scalar_one()
        return f"{name}-{value:04d}"
    value = session.execute(stmt, {"counter": name}).scalar_one()  # SQLite: writes are serialised
    return f"{name}-{value:04d}"
