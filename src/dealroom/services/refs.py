"""Human references: DEAL-2026-0042, ORD-2026-0089 — per prefix and year, never reused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dealroom.db.models import Counter


def next_ref(session: Session, prefix: str, now: datetime) -> str:
    name = f"{prefix}-{now.year}"
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(Counter)
        .values(name=name, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    if dialect == "postgresql":
        # A short transaction of its own: the counter row is locked for one statement, not
        # for the rest of the request (bench/api.py measured it as the hottest row lock).
        # A request that rolls back leaves a gap in the references; none is ever reused.
        with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[union-attr]
            value = conn.execute(stmt).scalar_one()
        return f"{name}-{value:04d}"
    value = session.execute(stmt).scalar_one()  # SQLite: writes are serialised anyway
    return f"{name}-{value:04d}"
