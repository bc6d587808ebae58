"""Durable timers under load: 1,000,000 scheduled, 100,000 due at once (PostgreSQL).

What it builds, in its own database `dealroom_bench_timers` (dropped and made afresh):

- one real rfq deal opened through the services (a request for quote, so it has a pending
  NEG-T01 timer due 48 h later and a NEG-T04 timer due 30 days later), cloned with COPY
  into `--due` deals, each with its own id, reference and recomputed hash chain: real deals
  that really expire;
- filler timers far in the future on a handful of other deals (INSERT … SELECT
  generate_series), up to `--total` pending timers in all.

What it measures, each run on a fresh copy of that database (CREATE DATABASE … TEMPLATE):

1. the drain rate with 1 and with 2 `dealroom worker --once --now <due instant>` OS
   processes: timers fired per second, from the first firing to the last;
2. the lag between due time and firing (done_at − due_at, p50/p99) with `dealroom worker`
   running continuously on the real clock: `--lag-burst` timers come due at one wall-clock
   instant, and a steady trickle of `--lag-rate` timers a second for `--lag-seconds`;
3. a raw-SQL baseline: the same claim, deal lock, deal update, timer updates, event and
   bell rows as plain SQL over psycopg, without the ORM and the engine — and the ratio;
4. EXPLAIN (ANALYZE, BUFFERS) of the worker's claim query on the 1,000,000 rows, which must
   be an index range scan on ix_timers_due with no sort.

The parties have email switched off: this measures timers; email delivery is the
notifications issue's (each timeout records two bell items all the same).

    .venv/bin/python bench/timers.py                 # the full size (long: see bench/README.md)
    .venv/bin/python bench/timers.py --quick         # 20,000 timers, 2,000 due: about a minute
    .venv/bin/python bench/timers.py --url postgresql://user@host:5432/postgres
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.types.json import Json, Jsonb
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from dealroom.config import Config, normalize_url
from dealroom.db import models as m
from dealroom.db.migrate import upgrade
from dealroom.db.session import Database, make_engine
from dealroom.domain.state import Payload
from dealroom.security import hash_password
from dealroom.services import deals, feed
from dealroom.services.audit import chain
from dealroom.services.notifications import preferences
from dealroom.services.uow import transaction
from dealroom.worker import claim_statement

console = Console()
DB_NAME = "dealroom_bench_timers"
RUN_DB = f"{DB_NAME}_run"
HOLDERS = 10
CONFIG = Config(database_url="unused", secret_key="bench-timers-signing-key-32-bytes-long")


# --- databases ---------------------------------------------------------------------------


def pg_url(base: str, database: str) -> str:
    return (
        make_url(normalize_url(base)).set(database=database).render_as_string(hide_password=False)
    )


def libpq_url(base: str, database: str) -> str:
    return pg_url(base, database).replace("postgresql+psycopg://", "postgresql://")


def admin(base: str, *statements: str) -> None:
    engine = create_engine(pg_url(base, "postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for sql in statements:
            conn.execute(text(sql))
    engine.dispose()


def fresh_run_db(base: str) -> str:
    """A copy of the loaded database for one run: every run starts from the same rows."""
    admin(
        base,
        f'DROP DATABASE IF EXISTS "{RUN_DB}" WITH (FORCE)',
        f'CREATE DATABASE "{RUN_DB}" TEMPLATE "{DB_NAME}" STRATEGY FILE_COPY',
    )
    return libpq_url(base, RUN_DB)


# --- loading ------------------------------------------------------------------------------


@dataclass
class Loaded:
    t0: datetime
    due_at: datetime
    deals: int
    timers: int
    seconds: float


def _copy(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: Any) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def load(base: str, *, due: int, total: int) -> Loaded:
    started = time.monotonic()
    admin(base, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')
    engine = make_engine(pg_url(base, DB_NAME))
    upgrade(engine)
    db = Database(engine)
    # The due instant is "now": T0 is 48 h (NEG-T01) before the end of loading, plus a margin.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=48, minutes=1)

    with transaction(db, now=t0, config=CONFIG) as uow:
        s = uow.session
        people = []
        for email in ("buyer@bench.test", "seller@bench.test"):
            user = m.User(email=email, name=email.split("@")[0], password_hash=hash_password("x"),
                          roles=[], kyc_verified=True, plan="paid", timezone="UTC",
                          created_at=t0 - timedelta(days=365))  # fmt: skip
            s.add(user)
            people.append(user)
        s.flush()
        for user in people:
            preferences.update(uow, user, email="off")
        listing = m.Listing(owner_id=people[1].id, title="Industrial bearings", currency="SAR",
                            unit_price=Decimal("50.00"), quantity=1000, process="rfq",
                            created_at=t0, updated_at=t0)  # fmt: skip
        s.add(listing)
        s.flush()
        template = deals.open_deal(uow, people[0], listing_id=listing.id,
                                   transition="request-quote",
                                   payload=Payload(terms={"quantity": 1000}, message="Q2")).deal  # fmt: skip
        s.flush()
        deal_cols = [c.key for c in m.Deal.__table__.columns]
        deal_row = {c: getattr(template, c) for c in deal_cols}
        timer_rows = [
            {c.key: getattr(t, c.key) for c in m.Timer.__table__.columns if c.key != "id"}
            for t in s.scalars(
                select(m.Timer).where(m.Timer.deal_id == template.id, m.Timer.status == "pending")
            )
        ]
        due_at = next(t["due_at"] for t in timer_rows if t["rule"] == "NEG-T01")
        counter = s.get(m.Counter, f"DEAL-{t0.year}")
        assert counter is not None
        first_ref = counter.value + 1
        counter.value += due - 1 + HOLDERS
    with db.session(write=False) as s:  # events are written when their transaction commits
        events = list(chain.deal_events(s, deal_row["id"]))
    feed_base = max(e.feed_seq for e in events) + 1
    engine.dispose()

    event_cols = [c.key for c in m.Event.__table__.columns if c.key != "id"]
    timer_cols = [c for c in timer_rows[0] if c != "id"]
    json_deal = {"listing_snapshot", "entered", "first_transitioned", "data", "rules"}
    clones = due - 1 + HOLDERS
    holder_ids: list[str] = []
    with psycopg.connect(libpq_url(base, DB_NAME)) as conn:
        new_deals: list[tuple[Any, ...]] = []
        new_events: list[tuple[Any, ...]] = []
        new_timers: list[tuple[Any, ...]] = []
        with Progress(TextColumn("cloning deals"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:  # fmt: skip
            task = bar.add_task("clone", total=clones)
            for i in range(clones):
                deal_id = m.new_id()
                prev = chain.GENESIS
                for e in events:
                    fields = {c: getattr(e, c) for c in event_cols}
                    fields.update(
                        deal_id=deal_id,
                        prev_hash=prev,
                        feed_seq=feed_base + i * len(events) + e.seq - 1,
                    )
                    fields["hash"] = prev = chain.event_hash(prev, SimpleNamespace(**fields))  # type: ignore[arg-type]
                    new_events.append(
                        tuple(Json(v) if c == "payload" else v for c, v in fields.items())
                    )
                row = {**deal_row, "id": deal_id, "ref": f"DEAL-{t0.year}-{first_ref + i:07d}",
                       "head_hash": prev}  # fmt: skip
                new_deals.append(
                    tuple(Jsonb(row[c]) if c in json_deal else row[c] for c in deal_cols)
                )
                if i < due - 1:
                    for t in timer_rows:
                        new_timers.append(tuple({**t, "deal_id": deal_id}[c] for c in timer_cols))
                else:
                    holder_ids.append(deal_id)
                if i % 5000 == 0:
                    bar.update(task, completed=i)
        _copy(conn, "deals", deal_cols, new_deals)
        _copy(conn, "events", event_cols, new_events)
        _copy(conn, "timers", timer_cols, new_timers)
        filler = max(0, total - 2 * due)
        conn.execute(
            """
            INSERT INTO timers (deal_id, kind, name, due_at, state, rule, event, status, created_at)
            SELECT (%(holders)s::text[])[1 + i %% %(n)s], 'transition', 'expire',
                   %(far)s::timestamptz + i * interval '1 second', 'quote-requested', 'NEG-T04',
                   'NEGOTIATION_TIMEOUT', 'pending', %(t0)s
            FROM generate_series(1, %(filler)s) AS i
            """,
            {"holders": holder_ids, "n": len(holder_ids), "far": t0 + timedelta(days=60),
             "t0": t0, "filler": filler},
        )  # fmt: skip
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        pending = conn.execute("SELECT count(*) FROM timers WHERE status = 'pending'").fetchone()
    return Loaded(t0, due_at, due, int(pending[0]) if pending else 0, time.monotonic() - started)


# --- runs ---------------------------------------------------------------------------------


def count_fired(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM timers WHERE status = 'fired' AND rule = 'NEG-T01'"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Drain:
    label: str
    fired: int
    seconds: float
    cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.fired / self.seconds if self.seconds else 0.0


def watch(
    url: str, label: str, target: int, *, done: Callable[[], bool], window: float | None
) -> Drain:
    """Poll the fired count until `target` or `window` seconds after the first firing."""
    first: float | None = None
    last_change = time.monotonic()
    fired = 0
    with psycopg.connect(url, autocommit=True) as conn, Progress(
        TextColumn(f"[bold]{label:<22}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=target, rate="")
        while True:
            now_fired = count_fired(conn)
            now = time.monotonic()
            if now_fired and first is None:
                first = now
            if now_fired != fired:
                fired, last_change = now_fired, now
            rate = f"{fired / (now - first):,.0f}/s" if first and now > first else ""
            bar.update(task, completed=fired, rate=rate)
            if fired >= target or (window and first and now - first >= window):
                break
            if done() and now - last_change > 2:
                break
            time.sleep(0.5 if target <= 10_000 else 1.0)
    return Drain(label, fired, (last_change - first) if first else 0.0)


def worker_env(url: str, mail_dir: str) -> dict[str, str]:
    return {**os.environ, "DEALROOM_DATABASE_URL": url, "DEALROOM_MAIL_DIR": mail_dir}


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def drain_once(base: str, loaded: Loaded, workers: int, mail: str, window: float | None) -> Drain:
    url = fresh_run_db(base)
    now = (loaded.t0 + timedelta(hours=49)).isoformat()
    cmd = [sys.executable, "-m", "dealroom", "worker", "--once", "--now", now]
    before = os.times()
    procs = [subprocess.Popen(cmd, env=worker_env(url, mail), stdout=subprocess.DEVNULL)
             for _ in range(workers)]  # fmt: skip
    try:
        result = watch(url, f"{workers} worker{'s' if workers > 1 else ''} --once",
                       loaded.deals, done=lambda: all(p.poll() is not None for p in procs),
                       window=window)  # fmt: skip
    finally:
        stop(procs)
    after = os.times()
    result.cpu = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return result


@dataclass
class Lag:
    label: str
    timers: int
    p50: float
    p99: float
    worst: float


def _set_due(conn: psycopg.Connection[Any], plan: list[tuple[int, datetime]]) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS plan (id bigint, due timestamptz)")
        cur.execute("TRUNCATE plan")
        with cur.copy("COPY plan (id, due) FROM STDIN") as cp:
            for row in plan:
                cp.write_row(row)
        cur.execute("UPDATE timers t SET due_at = plan.due FROM plan WHERE plan.id = t.id")


def _lag(conn: psycopg.Connection[Any], label: str, ids: list[int]) -> Lag:
    row = conn.execute(
        """
        SELECT count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - due_at)),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - due_at)),
               max(extract(epoch FROM done_at - due_at))
        FROM timers WHERE id = ANY(%s) AND status = 'fired'
        """,
        (ids,),
    ).fetchone()
    assert row is not None
    return Lag(label, int(row[0]), float(row[1] or 0), float(row[2] or 0), float(row[3] or 0))


def lag_run(
    base: str, loaded: Loaded, workers: int, mail: str, *, burst: int, rate: int, seconds: int
) -> list[Lag]:
    """Continuous workers on the real clock, timers due at wall-clock instants: first a
    burst due at one instant, then (once it has drained) a steady trickle."""
    url = fresh_run_db(base)
    with psycopg.connect(url, autocommit=True) as conn:
        # Park the NEG-T01 timers far away; each phase brings some due at chosen instants.
        conn.execute(
            "UPDATE timers SET due_at = due_at + interval '3650 days' WHERE rule = 'NEG-T01'"
        )
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM timers WHERE rule = 'NEG-T01' ORDER BY id LIMIT %s",
            (burst + rate * seconds,),
        )]  # fmt: skip
        bursting, trickling = ids[:burst], ids[burst:]
        cmd = [sys.executable, "-m", "dealroom", "worker", "--interval", "0.1"]
        procs = [subprocess.Popen(cmd, env=worker_env(url, mail), stdout=subprocess.DEVNULL)
                 for _ in range(workers)]  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until every worker has polled once
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
                if row and row[0] >= workers:
                    break
                time.sleep(0.2)
            instant = datetime.now(UTC) + timedelta(seconds=2)
            _set_due(conn, [(i, instant) for i in bursting])
            watch(url, f"burst, {workers} workers", burst, done=lambda: False, window=3600)
            start = datetime.now(UTC) + timedelta(seconds=2)
            _set_due(
                conn, [(i, start + timedelta(seconds=n / rate)) for n, i in enumerate(trickling)]
            )
            watch(url, f"{rate}/s, {workers} workers", burst + len(trickling),
                  done=lambda: False, window=seconds + 3600)  # fmt: skip
        finally:
            stop(procs)
        return [
            _lag(conn, f"{burst:,} due at one instant", bursting),
            _lag(conn, f"{rate}/s for {seconds} s", trickling),
        ]


# --- the raw-SQL baseline -----------------------------------------------------------------

CLAIM = """
SELECT id, deal_id FROM timers
WHERE status = 'pending' AND due_at <= %(now)s
ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED
"""


def raw_fire_one(conn: psycopg.Connection[Any], now: datetime) -> bool:
    """What one firing writes, as plain SQL: no ORM, no engine, no process file."""
    with conn.transaction():
        claimed = conn.execute(CLAIM, {"now": now}).fetchone()
        if claimed is None:
            return False
        timer_id, deal_id = claimed
        deal = conn.execute(
            "SELECT last_seq, head_hash, buyer_id, seller_id, ref FROM deals WHERE id = %s "
            "FOR UPDATE SKIP LOCKED",
            (deal_id,),
        ).fetchone()
        if deal is None:
            return True
        last_seq, head, buyer, seller, ref = deal
        payload = json.dumps({"transition": "expire", "rule": "NEG-T01"}, separators=(",", ":"))
        digest = hashlib.sha256((head + payload).encode()).hexdigest()
        conn.execute(
            "UPDATE deals SET state = 'expired', version = version + 1, last_seq = last_seq + 1, "
            "head_hash = %s, transition_count = transition_count + 1, last_transition = 'expire', "
            "updated_at = %s, closed_at = %s WHERE id = %s",
            (digest, now, now, deal_id),
        )
        conn.execute(
            "UPDATE timers SET status = 'fired', done_at = %s WHERE id = %s", (now, timer_id)
        )
        conn.execute(
            "UPDATE timers SET status = 'cancelled', done_at = %s "
            "WHERE deal_id = %s AND status = 'pending'",
            (now, deal_id),
        )
        # Last before COMMIT, as feed.number_feed does: the feed lock, the event numbered
        # after the feed's head inside its INSERT, the bell.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (feed.FEED_LOCK,))
        conn.execute(
            "INSERT INTO events (deal_id, seq, feed_seq, type, actor_id, actor_type, from_state, "
            "to_state, payload, created_at, prev_hash, hash) VALUES (%s, %s, "
            "(SELECT coalesce(max(feed_seq), 0) FROM events) + 1, 'NEGOTIATION_TIMEOUT', NULL, "
            "'system', 'quote-requested', 'expired', %s, %s, %s, %s) RETURNING feed_seq",
            (deal_id, last_seq + 1, payload, now, head, digest),
        )
        for user_id in (buyer, seller):
            conn.execute(
                "INSERT INTO notifications (user_id, deal_id, name, template, payload, created_at) "
                "VALUES (%s, %s, 'negotiation-timeout', 'negotiation-timeout', %s, %s)",
                (user_id, deal_id, Jsonb({"deal_ref": ref, "state": "expired"}), now),
            )
    return True


def raw_baseline(base: str, loaded: Loaded, window: float | None) -> Drain:
    url = fresh_run_db(base)
    now = loaded.t0 + timedelta(hours=49)
    finished = threading.Event()

    def run() -> None:
        with psycopg.connect(url) as conn:
            conn.prepare_threshold = 0
            while not finished.is_set() and raw_fire_one(conn, now):
                pass
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        return watch(
            url, "raw SQL, 1 connection", loaded.deals, done=finished.is_set, window=window
        )
    finally:
        finished.set()
        thread.join()


# --- EXPLAIN ------------------------------------------------------------------------------


def explain_claim(base: str, loaded: Loaded) -> tuple[str, bool]:
    stmt = claim_statement(loaded.t0 + timedelta(hours=49))
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with psycopg.connect(libpq_url(base, DB_NAME)) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
        conn.rollback()
    plan = "\n".join(r[0] for r in rows)
    ok = "Index Scan using ix_timers_due" in plan and "Sort" not in plan and "Seq Scan" not in plan
    return f"{sql}\n\n{plan}", ok


# --- main ---------------------------------------------------------------------------------


@contextmanager
def section(title: str) -> Iterator[None]:
    console.rule(f"[bold]{title}")
    yield


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="any database on the server; the bench makes its own")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="20,000 timers, 2,000 due")
    parser.add_argument("--total", type=int, help="scheduled timers (default 1,000,000)")
    parser.add_argument("--due", type=int, help="of which due at once (default 100,000)")
    parser.add_argument("--window", type=float, default=None,
                        help="measure each drain for this many seconds only (default: all)")  # fmt: skip
    parser.add_argument("--lag-burst", type=int, help="timers due at one instant (default 2,000)")
    parser.add_argument("--lag-rate", type=int, default=10, help="then this many a second")
    parser.add_argument("--lag-seconds", type=int, default=30, help="for this long")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    total = args.total or (20_000 if args.quick else 1_000_000)
    due = args.due or (2_000 if args.quick else 100_000)
    burst = args.lag_burst or (500 if args.quick else 2_000)
    lag_seconds = 10 if args.quick and args.lag_seconds == 30 else args.lag_seconds

    with psycopg.connect(libpq_url(args.url, "postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        server = row[0] if row else "?"
    console.print(
        f"PostgreSQL {server}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with section(f"loading {total:,} timers, {due:,} due at once"):
        loaded = load(args.url, due=due, total=total)
        console.print(f"{loaded.timers:,} pending timers on {loaded.deals + HOLDERS:,} deals "
                      f"loaded in {loaded.seconds:.1f} s")  # fmt: skip

    with section("the due-timer claim query"):
        plan, ok = explain_claim(args.url, loaded)
        console.print(Panel(plan, title="EXPLAIN (ANALYZE, BUFFERS)", expand=False))
        console.print("[green]index range scan on ix_timers_due, no sort[/]" if ok
                      else "[red]NOT an index range scan on ix_timers_due[/]")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="dealroom-bench-mail-") as mail:
        drains: list[Drain] = []
        with section("drain rate: dealroom worker --once"):
            for workers in (1, 2):
                drains.append(drain_once(args.url, loaded, workers, mail, args.window))
        with section("raw-SQL baseline"):
            raw = raw_baseline(args.url, loaded, args.window)
        with section("lag: dealroom worker on the real clock"):
            lags = lag_run(args.url, loaded, 2, mail, burst=burst, rate=args.lag_rate,
                           seconds=lag_seconds)  # fmt: skip

    table = Table(title=f"Draining {due:,} due timers out of {loaded.timers:,}")
    for col in ("run", "fired", "seconds", "timers/s", "vs raw SQL", "worker CPU s"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for d in [*drains, raw]:
        ratio = f"{raw.rate / d.rate:.1f}x slower" if d is not raw and d.rate else "1.0x"
        table.add_row(d.label, f"{d.fired:,}", f"{d.seconds:.1f}", f"{d.rate:,.0f}", ratio,
                      f"{d.cpu:.0f}" if d.cpu is not None else "")  # fmt: skip
    console.print(table)
    lag_table = Table(title="Lag from due time to firing (done_at − due_at), 2 workers")
    for col in ("timers due", "fired", "p50 s", "p99 s", "max s"):
        lag_table.add_column(col, justify="right" if col != "timers due" else "left")
    for lag in lags:
        lag_table.add_row(lag.label, f"{lag.timers:,}", f"{lag.p50:.2f}", f"{lag.p99:.2f}",
                          f"{lag.worst:.2f}")  # fmt: skip
    console.print(lag_table)
    if drains[0].rate:
        console.print(f"2 workers / 1 worker: {drains[1].rate / drains[0].rate:.2f}x; "
                      f"load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    burst_lag, steady_lag = lags
    for d in drains:  # the lines bench/run.py collects (see bench/README.md)
        line = {"name": f"timers: {d.label} drain", "figure": round(d.rate, 1),
                "baseline": round(raw.rate, 1),
                "ratio": round(raw.rate / d.rate, 2) if d.rate else None,
                "units": "timers/s", "higher_is_better": True, "baseline_is": "raw SQL",
                "due": due, "scheduled": loaded.timers, "window_s": args.window,
                "lag_burst_p50_s": round(burst_lag.p50, 3),
                "lag_burst_p99_s": round(burst_lag.p99, 3),
                "lag_steady_p50_s": round(steady_lag.p50, 3),
                "lag_steady_p99_s": round(steady_lag.p99, 3),
                "claim_is_index_range_scan": ok}  # fmt: skip
        print("BENCH " + json.dumps(line), flush=True)
    if not args.keep:
        admin(args.url, f'DROP DATABASE IF EXISTS "{RUN_DB}" WITH (FORCE)',
              f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')  # fmt: skip
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
