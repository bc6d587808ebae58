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
    value = session.execute(stmt).scalar_one()
    return f"{name}-{value:04d}"
