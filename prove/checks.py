"""Database-side checks after a run: promises kept, nothing half-written, chains intact,
timers fired exactly once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.audit.chain import verify_deal
from prove.load import Record


def wait_timers_drained(db: Database, timeout: float) -> int:
    """Wait (bounded) until no pending timer is overdue; returns how many still are."""
    deadline = time.monotonic() + timeout
    overdue = -1
    while time.monotonic() < deadline:
        with db.session(write=False) as s:
            overdue = s.execute(
                select(func.count()).select_from(m.Timer)
                .where(m.Timer.status == "pending", m.Timer.due_at < datetime.now(UTC))
            ).scalar_one()  # fmt: skip
        if overdue == 0:
            return 0
        time.sleep(0.5)
    return overdue


def check_all(db: Database, record: Record) -> list[tuple[str, bool, str]]:
    out: list[tuple[str, bool, str]] = []
    with db.session(write=False) as s:
        # One snapshot for every check: the worker may still be firing while we read, and
        # under READ COMMITTED a deal row read first would lag events read later.
        if db.engine.dialect.name == "postgresql":
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        deals = {d.id: d for d in s.scalars(select(m.Deal))}
        msgs = set(s.scalars(select(m.Message.id)))
        missing = [d for d in record.deals if d not in deals]
        behind = [d for d, v in record.deals.items() if d in deals and deals[d].version < v]
        out.append(("every 2xx deal is stored", not missing and not behind,
                    f"{len(record.deals)} deals acknowledged, {len(missing)} missing, "
                    f"{len(behind)} behind an acknowledged version"))  # fmt: skip
        lost = record.messages - msgs
        out.append(("every 2xx message is stored", not lost,
                    f"{len(record.messages)} acknowledged, {len(lost)} missing"))  # fmt: skip

        half: list[str] = []
        bad_chain: list[str] = []
        expired_twice: list[str] = []
        not_expired: list[str] = []
        now = datetime.now(UTC)
        for d in deals.values():
            events = list(s.scalars(select(m.Event).where(m.Event.deal_id == d.id).order_by(m.Event.seq)))  # fmt: skip
            seqs = [e.seq for e in events]
            quotes = sorted(s.scalars(select(m.QuoteVersion.number).where(m.QuoteVersion.deal_id == d.id)))  # fmt: skip
            moved = [e for e in events if e.to_state is not None]
            if (seqs != list(range(1, len(seqs) + 1)) or d.last_seq != len(seqs)
                    or (events and d.head_hash != events[-1].hash)
                    or quotes != list(range(1, len(quotes) + 1))
                    or (moved and moved[-1].to_state != d.state)):  # fmt: skip
                half.append(f"{d.id} seqs={seqs[-3:]} last_seq={d.last_seq} quotes={quotes} state={d.state}")  # fmt: skip
            v = verify_deal(s, d)
            if not v.valid:
                bad_chain.append(f"{d.id} first_bad_seq={v.first_bad_seq}")
            kinds = Counter(e.type for e in events)
            if kinds["QUOTE_EXPIRED"] > 1:
                expired_twice.append(d.id)
            cur = s.execute(select(m.QuoteVersion).where(m.QuoteVersion.deal_id == d.id).order_by(m.QuoteVersion.number.desc()).limit(1)).scalar_one_or_none()  # fmt: skip
            if (d.state == "quote-pending" and cur is not None and cur.valid_until is not None
                    and cur.valid_until < now - timedelta(seconds=5)):  # fmt: skip
                not_expired.append(d.id)
        out.append(("no deal is half-written", not half,
                    f"{len(deals)} deals: events 1..n contiguous, last_seq/head_hash/state agree, "
                    f"quote versions contiguous; {len(half)} bad {half[:3]}"))  # fmt: skip
        out.append(("every hash chain verifies", not bad_chain,
                    f"{len(deals)} chains, {len(bad_chain)} broken {bad_chain[:3]}"))  # fmt: skip
        fired = Counter(
            (t.deal_id, t.name, t.due_at)
            for t in s.scalars(select(m.Timer).where(m.Timer.status == "done"))
        )
        dup_timers = sum(1 for c in fired.values() if c > 1)
        expired = s.execute(select(func.count()).select_from(m.Event).where(m.Event.type == "QUOTE_EXPIRED")).scalar_one()  # fmt: skip
        overdue = s.execute(select(func.count()).select_from(m.Timer).where(m.Timer.status == "pending", m.Timer.due_at < now - timedelta(seconds=5))).scalar_one()  # fmt: skip
        failed = s.execute(select(func.count()).select_from(m.Timer).where(m.Timer.status == "failed")).scalar_one()  # fmt: skip
        out.append(("every due timer fired exactly once",
                    not expired_twice and not not_expired and dup_timers == 0 and overdue == 0 and failed == 0,
                    f"{expired} QUOTE_EXPIRED events, {len(expired_twice)} deals expired twice, "
                    f"{len(not_expired)} lapsed quotes not expired, {overdue} overdue pending timers, "
                    f"{failed} failed timers, {dup_timers} timers done twice"))  # fmt: skip
    out.append(("no 5xx except a proper 503 NEG-010", not record.bad,
                f"statuses {dict(sorted(record.statuses.items()))}, "
                f"{record.transport_errors} connection errors (retried); {record.bad[:3]}"))  # fmt: skip
    return out
