"""The audit trail at size on PostgreSQL: export of a 10,000-event deal, `verify` over
1,000,000 events.

Loads its own database `dealroom_bench_audit`: deals of 10,000 events each (100 of them,
1,000,000 events; `--quick`: 10 deals, 100,000 events), each chain built by
`services.audit.chain.append` itself (so every chain verifies) and written with `COPY`. Then:

- **export**: `trail_exports.export_csv` and `trail_exports.export_json` (with the verification the JSON
  carries, as `GET /v1/deals/{id}/audit` does) of one 10,000-event deal, read through
  `chain.deal_events` on a SQLAlchemy session: seconds and MB/s. Baseline: PostgreSQL's own
  `COPY (SELECT … ORDER BY seq) TO STDOUT` of the same rows (CSV; `row_to_json` for JSON).
- **verify**: `chain.verify_deal` over every deal, as `dealroom audit verify` does, in
  events/s. Baseline: `hashlib.sha256` over the same `prev_hash + canonical JSON` strings,
  chained, without the database (kept in memory for the first 100,000 events).

    .venv/bin/python bench/audit.py            # 1,000,000 events: a minute or two to load
    .venv/bin/python bench/audit.py --quick    # 100,000 events
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_URL,
    drop_database,
    emit,
    recreate_database,
    sa_url,
    with_database,
)

from dealroom.db import models as m
from dealroom.services.audit import chain
from dealroom.services.audit import exports as trail_exports

DB_NAME = "dealroom_bench_audit"
EVENTS_PER_DEAL = 10_000
BASELINE_SAMPLE = 100_000
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
console = Console(width=150)

COPY_COLUMNS = (
    "deal_id",
    "seq",
    "feed_seq",
    "type",
    "actor_id",
    "actor_type",
    "from_state",
    "to_state",
    "payload",
    "ip",
    "user_agent",
    "created_at",
    "prev_hash",
    "hash",
)
CSV_SQL = (
    "COPY (SELECT seq, created_at, type, actor_type, actor_id, from_state, to_state, payload,"
    " ip, user_agent, prev_hash, hash FROM events WHERE deal_id = '{deal}' ORDER BY seq)"
    " TO STDOUT WITH (FORMAT csv, HEADER)"
)
JSON_SQL = (
    "COPY (SELECT row_to_json(e) FROM events e WHERE deal_id = '{deal}' ORDER BY seq) TO STDOUT"
)


class _Collector:
    """Stands in for the session `chain.append` holds its events in until commit (its
    `info`); the events it returns are kept in `added`, numbered and written with COPY."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.added: list[m.Event] = []


def _walk(k: int, buyer: str, seller: str) -> dict[str, Any]:
    """A realistic event: a counter-offer with terms and a message, alternating sides."""
    by_buyer = k % 2 == 0
    return {
        "type": "TransitionFired",
        "actor_id": buyer if by_buyer else seller,
        "actor_type": "buyer" if by_buyer else "seller",
        "from_state": "quote-pending" if by_buyer else "counter-pending",
        "to_state": "counter-pending" if by_buyer else "quote-pending",
        "payload": {
            "transition": "counter",
            "quote_version": k,
            "terms": {
                "unit_price": f"{50 - (k % 40) * 0.25:.2f}",
                "quantity": 1000,
                "currency": "SAR",
                "lead_time_days": 7 + k % 5,
            },
            "message": f"Counter {k}: we can move on price if the volume holds — «{k}».",
        },
    }


def load(admin_url: str, deals: int) -> tuple[list[str], list[bytes], float]:
    """(deal ids, the first hashed strings, seconds)."""
    recreate_database(admin_url, DB_NAME)
    engine = create_engine(sa_url(with_database(admin_url, DB_NAME)))
    m.Base.metadata.create_all(engine)
    engine.dispose()
    started = time.perf_counter()
    buyer, seller = "b" * 8 + "-0000-4000-8000-" + "0" * 12, "5" * 8 + "-0000-4000-8000-" + "0" * 12
    hashed: list[bytes] = []
    deal_ids: list[str] = []
    feed = 0
    with psycopg.connect(with_database(admin_url, DB_NAME)) as conn:
        for uid, role in ((buyer, "buyer"), (seller, "seller")):
            conn.execute(
                "INSERT INTO users (id, email, name, password_hash, roles, kyc_verified, plan,"
                " timezone, locale, blocked, created_at) VALUES (%s, %s, %s, 'x', %s, true,"
                " 'paid', 'UTC', 'en', false, %s)",
                (uid, f"{role}@bench.test", role.title(), f'["{role}"]', T0),
            )
        conn.execute(
            "INSERT INTO listings (id, owner_id, kind, title, currency, unit_price, quantity,"
            " sale_mode, process, attributes, rules, status, created_at, updated_at) VALUES"
            " ('listing-1', %s, 'sell', 'Steel', 'SAR', 50, 1000, 'negotiable', 'rfq', '{}',"
            " '{}', 'active', %s, %s)",
            (seller, T0, T0),
        )
        for d in range(deals):
            deal = m.Deal(id=f"{d:08d}-0000-4000-8000-000000000000", last_seq=0, head_hash=None)
            sink = _Collector()
            for k in range(1, EVENTS_PER_DEAL + 1):
                feed += 1
                e = chain.append(
                    cast(Session, sink),
                    deal,
                    now=T0 + timedelta(seconds=feed),
                    ip="203.0.113.7",
                    user_agent="bench/1.0",
                    **_walk(k, buyer, seller),
                )
                e.feed_seq = feed
                sink.added.append(e)
            conn.execute(
                "INSERT INTO deals (id, ref, process_name, process_version, state, version,"
                " listing_id, listing_snapshot, buyer_id, seller_id, initiated_by, proposals,"
                " transition_count, entered, first_transitioned, data, rules, last_seq,"
                " head_hash, created_at, updated_at) VALUES (%s, %s, 'rfq', 1, 'quote-pending',"
                " 1, 'listing-1', '{}', %s, %s, 'buyer', 0, %s, '{}', '{}', '{}', '{}', %s, %s,"
                " %s, %s)",
                (
                    deal.id,
                    f"D-{d:06d}",
                    buyer,
                    seller,
                    deal.last_seq,
                    deal.last_seq,
                    deal.head_hash,
                    T0,
                    T0,
                ),
            )
            with conn.cursor().copy(f"COPY events ({', '.join(COPY_COLUMNS)}) FROM STDIN") as cp:
                for e in sink.added:
                    cp.write_row(
                        (
                            e.deal_id,
                            e.seq,
                            e.feed_seq,
                            e.type,
                            e.actor_id,
                            e.actor_type,
                            e.from_state,
                            e.to_state,
                            chain.canonical(e.payload),
                            e.ip,
                            e.user_agent,
                            e.created_at,
                            e.prev_hash,
                            e.hash,
                        )
                    )
                    if len(hashed) < BASELINE_SAMPLE:
                        hashed.append(chain.canonical(chain.hashed_fields(e)).encode())
            conn.commit()
            deal_ids.append(deal.id)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events")
    return deal_ids, hashed, time.perf_counter() - started


def core_events(s: Session, deal_id: str) -> Iterator[m.Event]:
    """`chain.deal_events` as Core rows: they carry the same attributes `verify_chain`
    reads, without building an ORM object per event."""
    stmt = (
        select(m.Event.__table__)
        .where(m.Event.deal_id == deal_id)
        .order_by(m.Event.seq)
        .execution_options(yield_per=1000)
    )
    return cast(Iterator[m.Event], iter(s.execute(stmt)))


def best_of(n: int, fn: Callable[[], int]) -> tuple[float, int]:
    """(median seconds, bytes) of n runs."""
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        size = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def drain(chunks: Iterator[str]) -> int:
    return sum(len(c.encode()) for c in chunks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="an admin URL (CREATE DATABASE)")
    parser.add_argument("--quick", action="store_true", help="10 deals, 100,000 events")
    parser.add_argument("--deals", type=int, help="deals of 10,000 events (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="exports timed (median)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    deals = args.deals or (10 if args.quick else 100)
    dsn = with_database(args.url, DB_NAME)

    with console.status(
        f"building {deals * EVENTS_PER_DEAL:,} chained events with "
        "services.audit.chain.append, COPY into PostgreSQL"
    ):
        deal_ids, hashed, seconds = load(args.url, deals)
    total = deals * EVENTS_PER_DEAL
    console.print(
        f"loaded {deals} deals × {EVENTS_PER_DEAL:,} events = {total:,} in {seconds:.0f} s"
    )

    engine = create_engine(sa_url(dsn))
    target = deal_ids[0]

    def export(fmt: str) -> int:
        with Session(engine) as s:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            deal = s.get_one(m.Deal, target)
            if fmt == "csv":
                return drain(trail_exports.export_csv(chain.deal_events(s, target)))
            verification = chain.verify_deal(s, deal)
            assert verification.valid, verification
            return drain(
                trail_exports.export_json(deal, chain.deal_events(s, target), verification)
            )

    def copy(sql: str) -> int:
        size = 0
        with psycopg.connect(dsn) as conn, conn.cursor().copy(sql.format(deal=target)) as cp:
            for block in cp:
                size += len(block)
        return size

    exports: dict[str, tuple[float, int, float, int]] = {}
    with console.status("exporting"):
        for fmt, sql in (("csv", CSV_SQL), ("json", JSON_SQL)):
            export(fmt)  # warm
            secs, size = best_of(args.repeat, lambda fmt=fmt: export(fmt))  # type: ignore[misc]
            bsecs, bsize = best_of(args.repeat, lambda sql=sql: copy(sql))  # type: ignore[misc]
            exports[fmt] = (secs, size, bsecs, bsize)

    with console.status(f"verifying {total:,} events"):
        with Session(engine) as s:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            deals_rows = list(s.scalars(select(m.Deal).order_by(m.Deal.id)))
            t0 = time.perf_counter()
            checked = 0
            for deal in deals_rows:
                result = chain.verify_deal(s, deal)
                if not result.valid:
                    raise SystemExit(f"chain of {deal.id} does not verify: {result}")
                checked += result.events
            verify_secs = time.perf_counter() - t0
            # A proposed change: the same check over Core rows (no ORM identity map).
            t0 = time.perf_counter()
            core_checked = 0
            for deal in deals_rows[:10]:  # 100,000 events are enough for a rate
                result = chain.verify_chain(core_events(s, deal.id), expected_head=deal.head_hash)
                if not result.valid:
                    raise SystemExit(f"chain of {deal.id} does not verify over Core rows")
                core_checked += result.events
            core_secs = time.perf_counter() - t0
        t0 = time.perf_counter()
        prev = chain.GENESIS
        for i, body in enumerate(hashed):
            if i % EVENTS_PER_DEAL == 0:
                prev = chain.GENESIS
            prev = hashlib.sha256(prev.encode() + body).hexdigest()
        hash_secs = time.perf_counter() - t0
    engine.dispose()
    if not args.keep:
        drop_database(args.url, DB_NAME)
    verify_rate = checked / verify_secs
    hash_rate = len(hashed) / hash_secs

    table = Table(title=f"Audit trail on PostgreSQL ({total:,} events)", title_justify="left")
    for col in ("what", "dealroom", "baseline", "baseline is", "ratio"):
        table.add_column(col, justify="left" if col in ("what", "baseline is") else "right")
    for fmt, (secs, size, bsecs, bsize) in exports.items():
        table.add_row(
            f"export {fmt.upper()}, {EVENTS_PER_DEAL:,} events",
            f"{secs * 1000:,.0f} ms, {size / secs / 1e6:.1f} MB/s ({size / 1e6:.1f} MB)",
            f"{bsecs * 1000:,.0f} ms, {bsize / bsecs / 1e6:.1f} MB/s ({bsize / 1e6:.1f} MB)",
            "COPY … TO STDOUT" + (" (row_to_json)" if fmt == "json" else " (csv)"),
            f"{secs / bsecs:.1f}× slower",
        )
    table.add_row(
        f"verify, {checked:,} events",
        f"{verify_rate:,.0f} events/s",
        f"{hash_rate:,.0f} events/s",
        f"sha256 chain in memory ({len(hashed):,})",
        f"{hash_rate / verify_rate:.1f}× slower",
    )
    core_rate = core_checked / core_secs
    table.add_row(
        "proposed: verify over Core rows",
        f"{core_rate:,.0f} events/s",
        f"{verify_rate:,.0f} events/s",
        "chain.verify_deal (ORM), same run",
        f"{verify_rate / core_rate:.2f}×",
    )
    console.print(table)
    console.print(
        f"verify took {verify_secs:.1f} s for {len(deals_rows)} deals "
        "(chain.verify_deal: SQLAlchemy ORM rows, yield_per 1000)."
    )
    for fmt, (secs, size, bsecs, bsize) in exports.items():
        emit(
            f"audit: export {fmt} 10,000 events",
            size / secs / 1e6,
            bsize / bsecs / 1e6,
            "MB/s",
            higher_is_better=True,
            seconds=secs,
            baseline_seconds=bsecs,
            bytes=size,
        )
    emit(
        f"audit: verify {checked:,} events",
        verify_rate,
        hash_rate,
        "events/s",
        higher_is_better=True,
        seconds=verify_secs,
    )
    emit(
        "audit: verify over Core rows (proposed)",
        core_rate,
        verify_rate,
        "events/s",
        higher_is_better=True,
        baseline_is="chain.verify_deal over ORM rows",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
