"""Transitions per second through the HTTP API on PostgreSQL, next to the same writes as
raw SQL (pgbench), in the same run.

What it builds, in its own database `dealroom_bench_api` (dropped and made afresh): one
seller with one market listing per client, one buyer per client, bearer tokens issued
directly (the password is hashed once). pgbench works on a twin made from it before the
server starts (`dealroom_bench_api_raw`, `CREATE DATABASE … TEMPLATE`): same schema and
rows, but the API's realtime hubs do not see its events (in one database they read every
raw-SQL event back from the feed's tail, CPU taken from the next API round: the API's
rounds fell by a third from one to the next). One run at a time per server (an advisory lock).

1. The API: `dealroom serve --workers 2` (real OS processes, on a free 127.0.0.1 port).
   16 client threads (one keep-alive `http.client` connection each) walk market deals end to end:
   POST /v1/deals make-offer (buyer) → accept (seller, expected_version) → request-close
   (seller) → confirm-close (buyer), the last one creating the order, escrow and shipment.
   After a warm-up, every request answered inside the measured window counts: 4
   transitions per walk, latency per request as the client sees it.
2. Raw SQL: `pgbench -n -c 16 -j 2 -T <same duration> -M prepared` with
   bench/api_pgbench.sql, a market deal walked as 4 transactions, statement for statement
   the writes of `services.deals.persist` and `open_deal`: the counter upsert and the deal
   insert, the deal row lock (SELECT … FOR UPDATE) and its two updates, the quote version
   insert or status move, the global feed lock (`pg_advisory_xact_lock`) and the feed
   position (`max(feed_seq)`), the events with their hashes, timers cancelled and
   inserted, bell items and their email rows, order / escrow / shipment on close, and the
   `pg_notify` the API sends after commit. One pgbench transaction is one walk, so raw
   transitions/s is 4 × pgbench's tps. The reads the API makes besides (the caller, the
   listing, the quote versions, preferences, and those that render the answer) are not in
   it; `--with-reads` adds a third side with those too, which splits the gap into "round
   trips the API makes" and "Python and HTTP".
3. The floor (`--floor`): bench/floor_app.py, a bare ASGI app under uvicorn with as many
   processes as the API, that runs the raw-SQL script's statements per request through
   psycopg (no framework, ORM, token, engine, hash chain or rendering), driven by the same
   load generator: writes only (exactly what pgbench runs), with the API's reads, with
   the reads pipelined, and that last one behind FastAPI (routing, a validated body).
   Whatever the API does besides those statements comes on top, so the floor's throughput
   is a ceiling for the API's on this machine.

The sides take turns: `--rounds` (default 3) rounds of API, floors, then pgbench, each side
measured for duration / rounds per round, so a machine whose background load drifts
during the run weighs on all alike; the report gives each round's figures too. Before
each side's round the database it writes is vacuumed, so that every round starts on as few
dead rows as the first (the development VM runs PostgreSQL with autovacuum off). While a
side runs, a sampler reads `pg_stat_activity` (what the bench database's backends are
doing: running, waiting on a lock, idle in a transaction) and the CPU time of the server
processes and of those backends, so the table can say where the time goes.

Target: the API reaches at least half of raw SQL. The exit status is 0 either way (it is
a measurement); the last line says whether the target was met.

    .venv/bin/python bench/api.py                # 30 s per side, about 3 minutes
    .venv/bin/python bench/api.py --quick        # 6 s per side, for CI
    .venv/bin/python bench/api.py --with-reads   # and raw SQL with the API's reads too
    .venv/bin/python bench/api.py --floor        # and the floor: a bare Python server
    .venv/bin/python bench/api.py --url postgresql://user@host:5432/postgres --keep
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
from common import memory_gib, pct
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from dealroom.config import normalize_url
from dealroom.db import models as m
from dealroom.db.migrate import upgrade
from dealroom.db.session import Database, make_engine
from dealroom.security import hash_password, issue_token
from dealroom.services.feed import FEED_LOCK
from dealroom.services.uow import session_scope
from dealroom_harness import servers
from dealroom_harness.databases import autocommit

DB_NAME = "dealroom_bench_api"
RAW_DB = "dealroom_bench_api_raw"
SECRET = "dealroom-bench-api-signing-key-of-at-least-32-bytes"
TARGET = 0.5
#: Steal above this share of the cores makes a run unfair to the side it hit.
STEAL_WARNING = 0.05
TRANSITIONS_PER_WALK = 4
STEPS = ("make-offer", "accept", "request-close", "confirm-close")
#: --floor: bench/floor_app.py's ways (side name, with the API's reads, pipelined, FastAPI).
FLOORS = (
    ("floor, writes only", False, False, False),
    ("floor", True, False, False),
    ("floor, pipelined", True, True, False),
    ("floor, pipelined, FastAPI", True, True, True),
)
SELLER_ID = "00000000-0000-4000-a000-000000000000"
BUYER_PREFIX = "00000000-0000-4000-b000-"
LISTING_PREFIX = "00000000-0000-4000-c000-"
console = Console(highlight=False, width=130)


def buyer_id(k: int) -> str:
    return f"{BUYER_PREFIX}{k:012d}"


def listing_id(k: int) -> str:
    return f"{LISTING_PREFIX}{k:012d}"


# --- the database -------------------------------------------------------------------------


def sa_url(base: str, database: str) -> str:
    return (
        make_url(normalize_url(base)).set(database=database).render_as_string(hide_password=False)
    )


def libpq_url(base: str, database: str) -> str:
    return sa_url(base, database).replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def exclusive_run(base: str) -> Iterator[None]:
    """One run at a time per server: the database name is fixed, and a second run would
    drop it under the first."""
    with psycopg.connect(libpq_url(base, "postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (DB_NAME,)).fetchone()
        if not (row and row[0]):
            raise SystemExit(f"another bench/api.py run is using {DB_NAME}; try again later")
        yield


def create_database(base: str) -> None:
    autocommit(
        base, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"'
    )
    engine = make_engine(sa_url(base, DB_NAME))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Seeded:
    seller_token: str
    buyer_tokens: list[str]
    listing_ids: list[str]


def seed(base: str, clients: int) -> Seeded:
    """One seller with one market listing per client, one buyer per client, and tokens."""
    now = datetime.now(UTC)
    password = hash_password("correct horse battery staple")  # once: argon2 is slow
    engine = make_engine(sa_url(base, DB_NAME))
    db = Database(engine)
    try:
        with session_scope(db) as s:
            people = [(SELLER_ID, "seller@bench.test", "Seller")] + [
                (buyer_id(k), f"buyer{k}@bench.test", f"Buyer {k}") for k in range(clients)
            ]
            s.add_all(
                m.User(id=uid, email=email, name=name, organization="Bench Ltd",
                       password_hash=password, roles=[], kyc_verified=True, plan="paid",
                       timezone="UTC", created_at=now - timedelta(days=365))
                for uid, email, name in people
            )  # fmt: skip
            s.flush()
            s.add_all(
                m.Listing(id=listing_id(k), owner_id=SELLER_ID, kind="sell",
                          title=f"Refurbished laptops, lot {k}", category="laptops",
                          currency="USD", unit_price=Decimal("120.00"), quantity=50,
                          sale_mode="negotiable", process="market", attributes={},
                          rules={}, status="active", created_at=now, updated_at=now)
                for k in range(clients)
            )  # fmt: skip
    finally:
        engine.dispose()
    autocommit(sa_url(base, DB_NAME), "VACUUM ANALYZE")
    autocommit(base, f'DROP DATABASE IF EXISTS "{RAW_DB}" WITH (FORCE)',
          f'CREATE DATABASE "{RAW_DB}" TEMPLATE "{DB_NAME}"')  # fmt: skip

    def token(uid: str) -> str:
        return issue_token(SECRET, uid, now=now, ttl_seconds=24 * 3600)[0]

    return Seeded(
        seller_token=token(SELLER_ID),
        buyer_tokens=[token(buyer_id(k)) for k in range(clients)],
        listing_ids=[listing_id(k) for k in range(clients)],
    )


# --- CPU time from /proc (Linux) ----------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def machine_busy() -> tuple[float, float, float]:
    """(busy, total, steal) jiffies of the whole machine; steal is the time a virtual
    machine's cores were runnable but the hypervisor ran something else."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    return float(sum(values) - idle), float(sum(values)), float(steal)


# --- what the database backends are doing -------------------------------------------------


@dataclass
class Activity:
    samples: int = 0
    running: float = 0.0  # active, not waiting on a lock
    advisory: float = 0.0  # waiting on an advisory lock (the feed lock)
    row_lock: float = 0.0  # waiting on another lock (a counter row, a deal row)
    idle_in_tx: float = 0.0  # a transaction open while the client thinks
    backend_cpu: float = 0.0  # CPU seconds of the bench database's backends

    def mean(self, value: float) -> float:
        return value / self.samples if self.samples else 0.0


class Sampler(threading.Thread):
    """Every `interval` s: the bench database's backends by state, and their CPU time."""

    QUERY = """
        SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity
        WHERE datname = ANY(%s) AND pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND query NOT LIKE 'LISTEN%%'
    """

    def __init__(self, dsn: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.interval = interval
        self.stop = threading.Event()
        self.activity = Activity()
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (first seen, last seen)
        self.measuring = False

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(self.interval):
                rows = conn.execute(self.QUERY, ([DB_NAME, RAW_DB],)).fetchall()
                for pid, *_ in rows:
                    now = cpu_seconds(pid)
                    if now is not None:
                        first = self._cpu.get(pid, (now, now))[0]
                        self._cpu[pid] = (first, now)
                if not self.measuring:
                    continue
                a = self.activity
                a.samples += 1
                for _, state, wait_type, wait in rows:
                    if wait_type == "Lock":
                        if wait == "advisory":
                            a.advisory += 1
                        else:
                            a.row_lock += 1
                    elif state == "active":
                        a.running += 1
                    elif state and state.startswith("idle in transaction"):
                        a.idle_in_tx += 1

    def begin(self) -> None:
        """Start counting: CPU from here on."""
        self._cpu = {pid: (last, last) for pid, (_, last) in self._cpu.items()}
        self.activity = Activity()
        self.measuring = True

    def end(self) -> Activity:
        self.measuring = False
        self.activity.backend_cpu = sum(last - first for first, last in self._cpu.values())
        return self.activity


# --- the API ------------------------------------------------------------------------------


class Server(servers.Server):
    """`dealroom serve --workers N` (or uvicorn, or the floor's bare app) as real processes,
    started as soon as they are made; their CPU time (the supervisor's and every worker's)
    is measured."""

    @classmethod
    def dealroom(cls, db_url: str, workers: int, logs: Path, *, use_uvicorn: bool) -> Server:
        env = {"DEALROOM_DATABASE_URL": db_url, "DEALROOM_SECRET_KEY": SECRET,
               "DEALROOM_MAIL_DIR": str(logs / "mail")}  # fmt: skip
        if use_uvicorn:
            cmd = servers.uvicorn_command("--proxy-headers", "--no-access-log")
        else:
            cmd = servers.dealroom_command("serve")
        return cls(
            cmd, env=env, workers=workers, log=logs / "server.log", name="the API server"
        )._started()

    @classmethod
    def floor(cls, dsn: str, workers: int, log: Path, *, reads: bool, pipeline: bool,
              fastapi: bool) -> Server:  # fmt: skip
        """bench/floor_app.py: the script's statements from a bare ASGI app (or FastAPI)."""
        env = {"PYTHONPATH": str(Path(__file__).parent), "FLOOR_DSN": dsn,
               "FLOOR_VARS": json.dumps(script_variables(datetime.now(UTC).year)),
               "FLOOR_READS": "1" if reads else "0",
               "FLOOR_PIPELINE": "1" if pipeline else "0"}  # fmt: skip
        app = "floor_app:fastapi_app" if fastapi else "floor_app:app"
        cmd = servers.uvicorn_command("--no-access-log", app=app, factory=fastapi)
        return cls(cmd, env=env, workers=workers, log=log, name="the floor")._started()

    def _started(self) -> Server:
        self.start()
        return self

    def wait_ready(self) -> None:
        try:
            self.wait_healthy(timeout=60, probe_timeout=2)
        except servers.ServerDidNotStart as exc:
            raise SystemExit(str(exc)) from None

    def pids(self) -> list[int]:
        return [self.pid, *children(self.pid)]

    def cpu(self) -> float:
        return sum(c for pid in self.pids() if (c := cpu_seconds(pid)) is not None)

    def stop(self, timeout: float = 20.0) -> None:
        super().stop(timeout)


@dataclass
class Sample:
    end: float  # time.perf_counter() when the answer arrived
    seconds: float
    step: int  # index into STEPS
    ok: bool


@dataclass
class ClientStats:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Connection(http.client.HTTPConnection):
    """One keep-alive HTTP/1.1 connection with TCP_NODELAY. The load generator shares the
    two cores with the server, and pgbench on the other side is C: the standard library's
    client took 0.6 ms of CPU per request here where httpx took 1.3-1.7 ms."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Walker(threading.Thread):
    """One client: market deals walked end to end, one request at a time."""

    def __init__(self, base: str, k: int, seeded: Seeded, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self.listing = seeded.listing_ids[k]
        json_type = {"Content-Type": "application/json"}
        self.buyer = {"Authorization": f"Bearer {seeded.buyer_tokens[k]}", **json_type}
        self.seller = {"Authorization": f"Bearer {seeded.seller_token}", **json_type}
        self.stop = stop
        self.stats = ClientStats()

    def _post(self, conn: _Connection, step: int, path: str, body: object,
              headers: dict[str, str]) -> dict[str, object] | None:  # fmt: skip
        start = time.perf_counter()
        try:
            conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            r = conn.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # the next request opens a new connection
            self.stats.samples.append(Sample(time.perf_counter(), 0.0, step, False))
            self.stats.errors.append(f"{STEPS[step]}: {type(exc).__name__}: {exc}")
            return None
        end = time.perf_counter()
        ok = r.status in (200, 201)
        self.stats.samples.append(Sample(end, end - start, step, ok))
        if not ok:
            self.stats.errors.append(f"{STEPS[step]}: {r.status} {raw[:200]!r}")
            return None
        data: dict[str, object] = json.loads(raw)
        return data

    def run(self) -> None:
        conn = _Connection(self.host, self.port, timeout=60)
        try:
            while not self.stop.is_set():
                deal = self._post(
                    conn, 0, "/v1/deals",
                    {"listing_id": self.listing, "transition": "make-offer",
                     "terms": {"unit_price": "100.00", "quantity": 50}},
                    self.buyer,
                )  # fmt: skip
                moves = (
                    (1, "accept", None, self.seller),
                    (2, "request-close", {"escrow_waived": False}, self.seller),
                    (3, "confirm-close", None, self.buyer),
                )
                for step, name, data, headers in moves:
                    if deal is None or self.stop.is_set():
                        break
                    body = {"name": name, "expected_version": deal["version"]}
                    if data is not None:
                        body["data"] = data
                    deal = self._post(conn, step, f"/v1/deals/{deal['id']}/transitions",
                                      body, headers)  # fmt: skip
        finally:
            conn.close()


@dataclass
class Phase:
    """One side's measurement (one round, or all rounds merged)."""

    name: str
    seconds: float
    transitions: int
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, per transition
    by_step: dict[str, list[float]] = field(default_factory=dict)
    latency_sum: float | None = None  # seconds, over all transitions (pgbench: per walk / 4)
    server_cpu: float | None = None  # CPU seconds of the app server processes
    client_cpu: float | None = None  # CPU seconds of the load generator
    activity: Activity = field(default_factory=Activity)
    busy: float = 0.0  # busy core-seconds of the whole machine (every process on it)
    steal: float = 0.0  # core-seconds the hypervisor gave to others (a virtual machine)
    loadavg: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # transitions/s of each round

    @property
    def rate(self) -> float:
        return self.transitions / self.seconds if self.seconds else 0.0

    @property
    def mean_latency(self) -> float | None:
        return None if self.latency_sum is None else self.latency_sum / max(1, self.transitions)

    def per_transition_ms(self, cpu: float | None) -> str:
        if cpu is None or not self.transitions:
            return "–"
        return f"{cpu * 1000 / self.transitions:.2f}"

    @classmethod
    def merge(cls, name: str, parts: Sequence[Phase]) -> Phase:
        def total(values: Sequence[float | None]) -> float | None:
            return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

        out = cls(name, sum(p.seconds for p in parts), sum(p.transitions for p in parts))
        out.errors = sum(p.errors for p in parts)
        out.latencies = [x for p in parts for x in p.latencies]
        out.by_step = {k: [x for p in parts for x in p.by_step.get(k, [])] for k in STEPS}
        out.latency_sum = total([p.latency_sum for p in parts])
        out.server_cpu = total([p.server_cpu for p in parts])
        out.client_cpu = total([p.client_cpu for p in parts])
        a = out.activity
        for p in parts:
            for f in ("samples", "running", "advisory", "row_lock", "idle_in_tx", "backend_cpu"):
                setattr(a, f, getattr(a, f) + getattr(p.activity, f))
        out.busy = sum(p.busy for p in parts)
        out.steal = sum(p.steal for p in parts)
        out.loadavg = [x for p in parts for x in p.loadavg]
        out.notes = [n for p in parts for n in p.notes]
        out.rounds = [p.rate for p in parts]
        return out


@dataclass
class Machine:
    """Busy jiffies of the whole machine between two readings."""

    busy: float = 0.0
    total: float = 0.0
    steal: float = 0.0

    @classmethod
    def now(cls) -> Machine:
        return cls(*machine_busy())

    def busy_core_seconds(self, later: Machine, seconds: float) -> float:
        return self._share(later.busy - self.busy, later) * (os.cpu_count() or 1) * seconds

    def steal_core_seconds(self, later: Machine, seconds: float) -> float:
        return self._share(later.steal - self.steal, later) * (os.cpu_count() or 1) * seconds

    def _share(self, jiffies: float, later: Machine) -> float:
        return jiffies / (later.total - self.total) if later.total > self.total else 0.0


def api_round(server: Server, seeded: Seeded, clients: int, ramp: float, seconds: float,
              sampler: Sampler, name: str = "API") -> Phase:  # fmt: skip
    """Walkers for `ramp` + `seconds`; what was answered in the last `seconds` counts."""
    stop = threading.Event()
    walkers = [Walker(server.url, k, seeded, stop) for k in range(clients)]
    for w in walkers:
        w.start()
    time.sleep(ramp)
    machine0, server0, client0 = Machine.now(), server.cpu(), time.process_time()
    sampler.begin()
    start = time.perf_counter()
    time.sleep(seconds)
    end = time.perf_counter()
    activity = sampler.end()
    machine1, server1, client1 = Machine.now(), server.cpu(), time.process_time()
    stop.set()
    for w in walkers:
        w.join(timeout=60)

    phase = Phase(name, end - start, 0, activity=activity, loadavg=[_loadavg()])
    phase.by_step = {step: [] for step in STEPS}
    for w in walkers:
        for sample in w.stats.samples:
            if start <= sample.end < end:
                if sample.ok:
                    phase.transitions += 1
                    phase.latencies.append(sample.seconds)
                    phase.by_step[STEPS[sample.step]].append(sample.seconds)
                else:
                    phase.errors += 1
    phase.latency_sum = sum(phase.latencies)
    phase.server_cpu = server1 - server0
    phase.client_cpu = client1 - client0
    phase.busy = machine0.busy_core_seconds(machine1, end - start)
    phase.steal = machine0.steal_core_seconds(machine1, end - start)
    errors = [e for w in walkers for e in w.stats.errors]
    if errors:
        phase.notes.append(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return phase


# --- raw SQL: the pgbench script ----------------------------------------------------------

SCRIPT = Path(__file__).with_name("api_pgbench.sql")
READS = "--reads "


def pgbench_script(*, with_reads: bool) -> str:
    """bench/api_pgbench.sql, with its `--reads` lines made statements if asked."""
    lines = SCRIPT.read_text().splitlines()
    if with_reads:
        lines = [line.removeprefix(READS) for line in lines]
    return "\n".join(lines) + "\n"


def script_variables(year: int) -> dict[str, object]:
    """The script's variables (pgbench -D; the floor's FLOOR_VARS)."""
    return {"year": year, "seller": SELLER_ID, "buyer_prefix": BUYER_PREFIX,
            "listing_prefix": LISTING_PREFIX, "feed_lock": FEED_LOCK,
            "channel": "dealroom_bench_raw"}  # fmt: skip


def pgbench_variables(year: int) -> list[str]:
    return [arg for k, v in script_variables(year).items() for arg in ("-D", f"{k}={v}")]


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def pgbench_round(dsn: str, script: Path, clients: int, seconds: int, sampler: Sampler,
                  name: str) -> Phase:  # fmt: skip
    cmd = ["pgbench", "-n", "-c", str(clients), "-j", "2", "-M", "prepared", "-T", str(seconds),
           *pgbench_variables(datetime.now(UTC).year), "-f", str(script), dsn]  # fmt: skip
    machine0 = Machine.now()
    sampler.begin()
    before = os.times()
    done = subprocess.run(cmd, capture_output=True, text=True)
    after = os.times()
    activity = sampler.end()
    machine1 = Machine.now()
    out = done.stdout + done.stderr
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    walks = re.search(r"number of transactions actually processed: (\d+)", out)
    if done.returncode != 0 or tps is None or walks is None:
        raise SystemExit(f"pgbench failed ({done.returncode}):\n{out[-3000:]}")
    n = int(walks[1])
    elapsed = n / float(tps[1]) if float(tps[1]) else float(seconds)
    phase = Phase(name, elapsed, n * TRANSITIONS_PER_WALK, activity=activity,
                  loadavg=[_loadavg()])  # fmt: skip
    failed = re.search(r"number of failed transactions: (\d+)", out)
    phase.errors = int(failed[1]) if failed else 0
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if latency:
        # pgbench times a walk (4 transitions): per transition, its quarter.
        phase.latency_sum = float(latency[1]) / 1000 / TRANSITIONS_PER_WALK * phase.transitions
    phase.client_cpu = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    phase.busy = machine0.busy_core_seconds(machine1, float(seconds))
    phase.steal = machine0.steal_core_seconds(machine1, float(seconds))
    return phase


# --- the report ---------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None or seconds != seconds else f"{seconds * 1000:.1f}"


def report(api: Phase, raws: list[Phase], server: str, clients: int, pg_version: str, *,
           floors: Sequence[Phase] = ()) -> None:  # fmt: skip
    raw = raws[0]
    ratio = api.rate / raw.rate if raw.rate else 0.0
    table = Table(title="Market deal transitions per second", title_justify="left")
    for col in ("", "transitions/s", "ratio", "p50 ms", "p99 ms", "mean ms", "errors",
                "each round"):  # fmt: skip
        table.add_column(col, justify="left" if not col else "right")
    table.add_row(
        f"API over HTTP ({server})", f"{api.rate:,.0f}", f"{ratio:.2f}",
        _ms(pct(api.latencies, 50)), _ms(pct(api.latencies, 99)), _ms(api.mean_latency),
        str(api.errors), " / ".join(f"{r:,.0f}" for r in api.rounds),
    )  # fmt: skip
    for f in floors:
        table.add_row(
            f"{f.name}: the script from a bare Python server", f"{f.rate:,.0f}",
            f"{f.rate / raw.rate if raw.rate else 0.0:.2f}", _ms(pct(f.latencies, 50)),
            _ms(pct(f.latencies, 99)), _ms(f.mean_latency), str(f.errors),
            " / ".join(f"{r:,.0f}" for r in f.rounds),
        )  # fmt: skip
    for r in raws:
        table.add_row(
            f"raw SQL, pgbench ({r.name})", f"{r.rate:,.0f}",
            "1.00" if r is raw else f"{r.rate / raw.rate:.2f}", "", "",
            _ms(r.mean_latency), str(r.errors), " / ".join(f"{x:,.0f}" for x in r.rounds),
        )  # fmt: skip
    console.print(table)

    steps = Table(title="API latency per transition (ms, as the client sees it)",
                  title_justify="left")  # fmt: skip
    for col in ("transition", "requests", "p50", "p99", "mean"):
        steps.add_column(col, justify="left" if col == "transition" else "right")
    for name, values in api.by_step.items():
        steps.add_row(name, f"{len(values):,}", _ms(pct(values, 50)), _ms(pct(values, 99)),
                      _ms(statistics.fmean(values) if values else None))  # fmt: skip
    console.print(steps)

    cost = Table(title="Where the time goes", title_justify="left")
    for col in ("side", "app CPU ms/tr", "PG CPU ms/tr", "load gen ms/tr", "machine busy",
                "steal", "running", "wait feed lock", "wait row lock", "idle in tx",
                "load avg"):  # fmt: skip
        cost.add_column(col, justify="left" if col == "side" else "right")
    cores = os.cpu_count() or 1
    for p in (api, *floors, *raws):
        a = p.activity
        cost.add_row(
            p.name, p.per_transition_ms(p.server_cpu), p.per_transition_ms(a.backend_cpu),
            p.per_transition_ms(p.client_cpu), f"{p.busy / (p.seconds * cores):.0%}",
            f"{p.steal / (p.seconds * cores):.0%}", f"{a.mean(a.running):.1f}",
            f"{a.mean(a.advisory):.1f}", f"{a.mean(a.row_lock):.1f}",
            f"{a.mean(a.idle_in_tx):.1f}", f"{statistics.fmean(p.loadavg):.1f}",
        )  # fmt: skip
    console.print(cost)
    console.print(
        "ms/tr: CPU milliseconds per transition of the API server processes, of the bench "
        "database's PostgreSQL backends, and of the load generator (the client threads, or "
        "pgbench). floor: bench/floor_app.py, a bare ASGI app under uvicorn (as many "
        "processes as the API; the last one behind FastAPI) running the raw-SQL script's "
        "statements through psycopg (writes only: pgbench's own; the others with the API's "
        "reads too), with no ORM, token, engine or rendering. machine busy: all cores, every "
        "process on the machine. steal: CPU time the hypervisor gave to other virtual "
        "machines (above a few per cent the run is not a fair measurement: rerun it). "
        "running / wait … / idle in tx: mean number of the bench database's backends (of "
        f"{clients} clients) in that state, sampled every 0.2 s. Raw mean ms: pgbench's "
        "latency per walk / 4."
    )
    for p in (api, *floors, *raws):
        if p.steal > STEAL_WARNING * p.seconds * cores:
            p.notes.append(
                f"the hypervisor took {p.steal / (p.seconds * cores):.0%} of the CPU during this "
                "side: the figures are not comparable; rerun on a quieter host"
            )
        for note in dict.fromkeys(p.notes):
            console.print(f"[yellow]{p.name}: {note}[/]")
    console.print(
        f"Machine: {cores} cores, {memory_gib()}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {pg_version}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )
    for f in floors:
        console.print(
            f"{f.name}: {f.rate:,.0f} / {raw.rate:,.0f} = "
            f"{f.rate / raw.rate if raw.rate else 0.0:.2f} of raw SQL, for a Python server that "
            "does nothing but these statements (the API does them and its own work too)."
        )
    verdict = "[bold green]met[/]" if ratio >= TARGET else "[bold red]NOT met[/]"
    console.print(
        f"API / raw SQL = {api.rate:,.0f} / {raw.rate:,.0f} = [bold]{ratio:.2f}[/]; "
        f"target ≥ {TARGET:.1f}: {verdict}."
    )


# --- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL of the PostgreSQL server (CREATE DATABASE)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="6 s per side, for CI")
    parser.add_argument("--duration", type=float, help="seconds per side (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="API/pgbench turns (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds before the first round (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="API server processes")
    parser.add_argument("--uvicorn", action="store_true",
                        help="run uvicorn --no-access-log instead of `dealroom serve`")  # fmt: skip
    parser.add_argument("--with-reads", action="store_true",
                        help="also pgbench with the API's reads (a third side)")  # fmt: skip
    parser.add_argument("--floor", action="store_true",
                        help="also the floor: the script's statements from a bare Python "
                        "server: writes only, with the API's reads, pipelined, and pipelined "
                        "behind FastAPI (bench/floor_app.py)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the database, the scripts and the server log")  # fmt: skip
    args = parser.parse_args(argv)
    duration = args.duration or (6.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    rounds = max(1, args.rounds)
    seconds = max(1, round(duration / rounds))  # pgbench -T takes whole seconds
    if shutil.which("pgbench") is None:
        raise SystemExit("pgbench is not on PATH (Debian: apt-get install postgresql-client)")

    console.print(
        f"dealroom API benchmark: {args.clients} clients, {args.workers} server processes, "
        f"{rounds} rounds of {seconds} s per side after {warmup:g} s of warm-up"
    )
    with exclusive_run(args.url):
        return run(args, warmup=warmup, rounds=rounds, seconds=seconds)


def run(args: argparse.Namespace, *, warmup: float, rounds: int, seconds: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="dealroom-bench-api-"))
    dsn = libpq_url(args.url, DB_NAME)
    raw_dsn = libpq_url(args.url, RAW_DB)
    server: Server | None = None
    floors: dict[str, Server] = {}
    sampler: Sampler | None = None
    try:
        with console.status("creating and migrating the database"):
            create_database(args.url)
            seeded = seed(args.url, args.clients)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg_version = f"PostgreSQL {row[0] if row else '?'}"
        sampler = Sampler(dsn)
        sampler.start()
        sides = [("writes", False)] + ([("writes + reads", True)] if args.with_reads else [])
        scripts = {}
        for name, with_reads in sides:
            scripts[name] = work / f"walk-{'reads' if with_reads else 'writes'}.sql"
            scripts[name].write_text(pgbench_script(with_reads=with_reads))

        with console.status("starting the API server"):
            server = Server.dealroom(sa_url(args.url, DB_NAME), args.workers, work,
                                     use_uvicorn=args.uvicorn)  # fmt: skip
            server.wait_ready()
            # The floor writes into the raw-SQL twin too: no realtime hub listens there.
            floors = {
                name: Server.floor(raw_dsn, args.workers, work / f"floor-{i}.log", reads=reads,
                                   pipeline=piped, fastapi=fast)
                for i, (name, reads, piped, fast) in enumerate(FLOORS if args.floor else ())
            }  # fmt: skip
            for floor in floors.values():
                floor.wait_ready()
        with console.status("warming up"):
            api_round(server, seeded, args.clients, 0, warmup, sampler)
            for name, floor in floors.items():
                api_round(floor, seeded, args.clients, 0, warmup, sampler, name)
            for name, _ in sides:
                pgbench_round(raw_dsn, scripts[name], args.clients, max(1, round(warmup)), sampler,
                              name)  # fmt: skip
        autocommit(args.url, "CHECKPOINT")

        def fresh(database: str) -> None:
            """Dead rows out before a side's round: with autovacuum off (as on the
            development VM) each round would otherwise start on more of them than the last
            (the floor fell from 147 to 67 transitions/s over three rounds, PostgreSQL's
            CPU per transition rising 3.6 → 6.2 ms, and back after a VACUUM)."""
            autocommit(sa_url(args.url, database), "VACUUM")

        api_parts: list[Phase] = []
        floor_parts: dict[str, list[Phase]] = {name: [] for name in floors}
        raw_parts: dict[str, list[Phase]] = {name: [] for name, _ in sides}
        for i in range(rounds):
            with console.status(f"round {i + 1}/{rounds}: the API, {args.clients} clients"):
                fresh(DB_NAME)
                api_parts.append(api_round(server, seeded, args.clients, 1.0, seconds, sampler))
            line = f"round {i + 1}/{rounds}: API {api_parts[-1].rate:,.0f}"
            for name, floor in floors.items():
                with console.status(f"round {i + 1}/{rounds}: {name}"):
                    fresh(RAW_DB)
                    floor_parts[name].append(
                        api_round(floor, seeded, args.clients, 1.0, seconds, sampler, name)
                    )
                line += f", {name} {floor_parts[name][-1].rate:,.0f}"
            for name, _ in sides:
                with console.status(f"round {i + 1}/{rounds}: pgbench ({name})"):
                    fresh(RAW_DB)
                    raw_parts[name].append(
                        pgbench_round(raw_dsn, scripts[name], args.clients, seconds, sampler, name)
                    )
                line += f", raw ({name}) {raw_parts[name][-1].rate:,.0f}"
            console.print(line + " transitions/s")
        server.stop()
        for floor in floors.values():
            floor.stop()

        api = Phase.merge("API", api_parts)
        raws = [Phase.merge(name, raw_parts[name]) for name, _ in sides]
        lows = [Phase.merge(name, floor_parts[name]) for name in floors]
        server_name = f"{'uvicorn' if args.uvicorn else 'dealroom serve'} --workers {args.workers}"
        report(api, raws, server_name, args.clients, pg_version, floors=lows)
    finally:
        if server is not None:
            server.stop()
        for floor in floors.values():
            floor.stop()
        if sampler is not None:
            sampler.stop.set()
            sampler.join(timeout=5)
        if args.keep:
            console.print(
                f"kept: databases {DB_NAME} and {RAW_DB}, scripts and server log in {work}"
            )
        else:
            autocommit(args.url, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)',
                  f'DROP DATABASE IF EXISTS "{RAW_DB}" WITH (FORCE)')  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
