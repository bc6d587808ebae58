"""Commit-to-delivery latency of the live streams across two API processes on PostgreSQL.

Two `uvicorn --factory dealroom.app:create_app` processes share one PostgreSQL database.
Subscribers (raw asyncio sockets, one connection each) open `GET /v1/deals/{id}/stream`,
spread evenly over the deals and alternately over the two processes. A driver makes
counter-offers and posts messages through the API, alternately through either process,
each carrying a marker; every subscriber notes when each marked event reaches it.

Two phases: `paced` (a steady rate, for latency) and `flood` (as fast as the driver can
go with several moves in flight, for deliveries per second). Latency is measured from the
moment the driver sends the write, so it includes the write itself (HTTP, the transaction,
the commit): an upper bound of commit-to-delivery. The figure from the moment the write's
answer arrived (after its commit and NOTIFY) is printed beside it. Every subscriber also
checks that it got each event of its deal exactly once, in order.

The anchor is Supabase Realtime's published "broadcast from database" figures.

    .venv/bin/python bench/realtime.py            # 1,000 subscribers, about a minute
    .venv/bin/python bench/realtime.py --quick    # 100 subscribers, for CI

PostgreSQL: `--database-url`, else DEALROOM_BENCH_DATABASE_URL, else
DEALROOM_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test; a scratch
database `dealroom_bench_realtime_<pid>` is made beside it and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database, make_engine
from dealroom.domain.state import Payload
from dealroom.security import hash_password, issue_token
from dealroom.services import deals
from dealroom.services.uow import transaction
from dealroom_harness.databases import scratch_database
from dealroom_harness.servers import Server, ServerDidNotStart, running, uvicorn_command

SUPABASE = {"p50": 46.0, "p99": 159.0}  # ms, Supabase Realtime, broadcast from database
SECRET = "dealroom-bench-signing-key-at-least-32-bytes"
MARKER = re.compile(rb"bench-(\d+)")
MARKER_TEXT = re.compile(r"bench-(\d+)")
SEQ = re.compile(rb'"seq":(\d+)')
console = Console(width=150)


# --- setup --------------------------------------------------------------------------------


@dataclass
class Room:
    deal_id: str
    tokens: dict[str, str]  # buyer, seller
    version: int = 2
    price: Decimal = Decimal("50.00")
    counters: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def seed(db: Database, deals_wanted: int) -> list[Room]:
    """Pairs of users, each with an rfq deal quoted at 50.00 (the buyer's turn)."""
    now = datetime.now(UTC)
    config = Config(database_url="unused", secret_key=SECRET)
    password = hash_password("correct horse battery")
    rooms = []
    for i in range(deals_wanted):
        with transaction(db, now=now, config=config) as uow:
            s = uow.session
            buyer, seller = (
                m.User(email=f"{role}{i}@bench.test", name=f"{role.title()} {i}",
                       password_hash=password, roles=[], kyc_verified=True, plan="paid",
                       timezone="UTC", created_at=now - timedelta(days=365))
                for role in ("buyer", "seller")
            )  # fmt: skip
            s.add_all([buyer, seller])
            s.flush()
            listing = m.Listing(owner_id=seller.id, title=f"Bearings lot {i}", currency="SAR",
                                unit_price=Decimal("50.00"), quantity=1000, process="rfq",
                                created_at=now, updated_at=now)  # fmt: skip
            s.add(listing)
            s.flush()
            deal = deals.open_deal(uow, buyer, listing_id=listing.id, transition="request-quote",
                                   payload=Payload(terms={"quantity": 1000}, message="Need for Q2")).deal  # fmt: skip
            deals.fire_transition(uow, seller, deal_id=deal.id, name="send-quote", expected_version=1,
                                  payload=Payload(terms={"unit_price": "50.00", "lead_time_days": 7}))  # fmt: skip
            tokens = {
                "buyer": issue_token(SECRET, buyer.id, now=now, ttl_seconds=3600)[0],
                "seller": issue_token(SECRET, seller.id, now=now, ttl_seconds=3600)[0],
            }
            rooms.append(Room(str(deal.id), tokens))
    return rooms


def api_servers(db_url: str, logs: Path) -> list[Server]:
    """The two API processes, `uvicorn --factory dealroom.app:create_app` as deployed."""
    env = {"DEALROOM_DATABASE_URL": db_url, "DEALROOM_SECRET_KEY": SECRET}
    cmd = uvicorn_command("--log-level", "warning", "--timeout-graceful-shutdown", "3",
                          "--backlog", "4096")  # fmt: skip
    return [Server(cmd, env=env, log=logs / f"{name}.log", name=f"API process {name}")
            for name in ("a", "b")]  # fmt: skip


# --- subscribers --------------------------------------------------------------------------


class Subscriber:
    """One SSE connection on a raw socket; notes when each marked event arrives."""

    def __init__(self, port: int, room: Room, role: str) -> None:
        self.port = port
        self.room = room
        self.role = role
        self.ready = asyncio.Event()
        self.arrivals: dict[int, float] = {}
        self.seqs: list[int] = []
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        except OSError as exc:
            self.error = exc
            self.ready.set()
            return
        request = (
            f"GET /v1/deals/{self.room.deal_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.room.tokens[self.role]}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                body = await asyncio.wait_for(reader.read(2000), 5)
                raise RuntimeError((head + body).decode(errors="replace"))
            buffer = b""
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.strip(), 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                now = time.perf_counter()
                buffer += chunk[:-2]
                *messages, buffer = buffer.split(b"\n\n")
                for message in messages:
                    self._note(message, now)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self.error = exc
        finally:
            self.ready.set()
            writer.close()

    def _note(self, message: bytes, now: float) -> None:
        if b"event: ready" in message:
            self.ready.set()
            return
        if b"event: deal-event" not in message:
            return
        seq = SEQ.search(message)
        if seq is not None:
            self.seqs.append(int(seq[1]))
        marker = MARKER.search(message)
        if marker is not None:
            self.arrivals.setdefault(int(marker[1]), now)


# --- when each write committed -------------------------------------------------------------


class CommitWatch(threading.Thread):
    """A LISTEN of the bench's own on the channel the API processes NOTIFY on: PostgreSQL
    delivers a move's announcement at its COMMIT, so the moment it is heard is the commit
    time."""

    def __init__(self, dsn: str) -> None:
        super().__init__(name="commit-watch", daemon=True)
        self.dsn = dsn
        self.heard: dict[int, float] = {}
        self.listening = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("LISTEN dealroom")
            self.listening.set()
            while not self.done.is_set():
                for note in conn.notifies(timeout=0.2):
                    at = time.perf_counter()
                    for k in MARKER_TEXT.findall(note.payload):
                        self.heard.setdefault(int(k), at)


# --- the driver ---------------------------------------------------------------------------


@dataclass
class Move:
    k: int
    room: Room
    sent: float = 0.0
    answered: float = 0.0
    ok: bool = False


async def make_move(client: httpx.AsyncClient, api: Server, move: Move) -> None:
    room = move.room
    async with room.lock:
        move.sent = time.perf_counter()
        if room.counters < 4:  # counter-offers both ways, then messages (the rounds run out)
            role = "buyer" if room.counters % 2 == 0 else "seller"
            room.price = (room.price * Decimal("0.98")).quantize(Decimal("0.01"))
            r = await client.post(
                f"{api.url}/v1/deals/{room.deal_id}/transitions",
                json={"name": "counter", "expected_version": room.version,
                      "terms": {"unit_price": str(room.price)},
                      "message": f"bench-{move.k}: volume discount expected for this quantity"},
                headers={"Authorization": f"Bearer {room.tokens[role]}"},
            )  # fmt: skip
            if r.status_code == 200:
                room.version = r.json()["version"]
                room.counters += 1
        else:
            role = "buyer" if move.k % 2 else "seller"
            r = await client.post(
                f"{api.url}/v1/deals/{room.deal_id}/messages",
                json={"body": f"bench-{move.k}"},
                headers={"Authorization": f"Bearer {room.tokens[role]}"},
            )
        move.answered = time.perf_counter()
        move.ok = r.status_code in (200, 201)
        if not move.ok:
            console.print(f"[red]move {move.k} refused: {r.status_code} {r.text[:200]}")


async def drive(
    apis: list[Server],
    rooms: list[Room],
    first_k: int,
    count: int,
    *,
    rate: float | None,
    in_flight: int,
) -> list[Move]:
    moves = [Move(first_k + i, rooms[i % len(rooms)]) for i in range(count)]
    limits = httpx.Limits(max_connections=in_flight * 2, max_keepalive_connections=in_flight * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        if rate is not None:
            started = time.perf_counter()
            tasks = []
            for i, move in enumerate(moves):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(make_move(client, apis[i % 2], move)))
            await asyncio.gather(*tasks)
        else:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(count):
                queue.put_nowait(i)

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await make_move(client, apis[i % 2], moves[i])

            await asyncio.gather(*(worker() for _ in range(in_flight)))
    return moves


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    moves: int
    deliveries: int
    expected: int
    from_commit: list[float]
    from_send: list[float]
    seconds: float
    write_ms: float

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def by_room(subscribers: list[Subscriber]) -> dict[int, list[Subscriber]]:
    found: dict[int, list[Subscriber]] = {}
    for s in subscribers:
        found.setdefault(id(s.room), []).append(s)
    return found


async def settle(subscribers: list[Subscriber], moves: list[Move], timeout: float) -> None:
    """Wait until every subscriber has every move of its deal (or the time is up)."""
    rooms = by_room(subscribers)
    wanted = [(mv.k, rooms.get(id(mv.room), [])) for mv in moves if mv.ok]
    total = sum(len(subs) for _, subs in wanted)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if sum(1 for k, subs in wanted for s in subs if k in s.arrivals) >= total:
            return
        await asyncio.sleep(0.05)


def measure(name: str, subscribers: list[Subscriber], moves: list[Move], commits: dict[int, float]) -> Result:  # fmt: skip
    rooms = by_room(subscribers)
    from_commit, from_send = [], []
    last = 0.0
    expected = 0
    for mv in moves:
        if not mv.ok:
            continue
        committed = commits.get(mv.k)
        for s in rooms.get(id(mv.room), []):
            expected += 1
            at = s.arrivals.get(mv.k)
            if at is None:
                continue
            from_send.append((at - mv.sent) * 1000)
            if committed is not None:
                from_commit.append((at - committed) * 1000)
            last = max(last, at)
    first = min((mv.sent for mv in moves), default=0.0)
    writes = [(mv.answered - mv.sent) * 1000 for mv in moves if mv.ok]
    return Result(name, len(moves), len(from_send), expected, from_commit, from_send,
                  last - first, statistics.median(writes) if writes else float("nan"))  # fmt: skip


def check_order(subscribers: list[Subscriber]) -> tuple[int, int]:
    """(subscribers whose seqs skip or repeat, subscribers that failed)."""
    bad = sum(
        1 for s in subscribers if any(b != a + 1 for a, b in zip(s.seqs, s.seqs[1:], strict=False))
    )
    return bad, sum(1 for s in subscribers if s.error is not None)


def report(results: list[Result], subscribers: int, bad: int, failed: int) -> None:
    table = Table(
        title=f"{subscribers} SSE subscribers on 2 API processes, PostgreSQL LISTEN/NOTIFY"
    )
    for col in ("phase", "moves", "delivered", "commit→delivery p50", "p99",
                "write sent→delivery p50", "p99", "write p50", "deliveries/s"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r.name, str(r.moves), f"{r.deliveries}/{r.expected}",
                      f"{pct(r.from_commit, 0.5):.1f} ms", f"{pct(r.from_commit, 0.99):.1f} ms",
                      f"{pct(r.from_send, 0.5):.1f} ms", f"{pct(r.from_send, 0.99):.1f} ms",
                      f"{r.write_ms:.1f} ms", f"{r.per_second:,.0f}")  # fmt: skip
    table.add_row("Supabase Realtime", "", "", f"{SUPABASE['p50']:.0f} ms",
                  f"{SUPABASE['p99']:.0f} ms", "", "", "", "", style="dim")  # fmt: skip
    console.print(table)
    console.print(
        "Supabase Realtime, broadcast from database (published figures): "
        f"median {SUPABASE['p50']:.0f} ms, p99 {SUPABASE['p99']:.0f} ms."
    )
    console.print(
        "commit→delivery: from the NOTIFY each commit delivers (heard by the bench's own "
        "LISTEN) to the event's arrival on each subscriber; write sent→delivery adds the "
        "write itself (HTTP, the transaction, the commit)."
    )
    console.print(
        f"Order check: {bad} subscriber(s) saw a skipped or repeated seq; {failed} failed. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}."
    )


# --- main ---------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, apis: list[Server], rooms: list[Room], watch: CommitWatch
) -> int:
    subscribers = [
        Subscriber(
            apis[i % 2].port, rooms[(i // 2) % len(rooms)], "buyer" if i % 4 < 2 else "seller"
        )
        for i in range(args.subscribers)
    ]
    started = time.perf_counter()
    # Clients arrive a few at a time (each connect takes a database connection briefly).
    step = 10
    for batch in range(0, len(subscribers), step):
        for s in subscribers[batch : batch + step]:
            s.task = asyncio.create_task(s.run())
        await asyncio.wait_for(
            asyncio.gather(*(s.ready.wait() for s in subscribers[batch : batch + step])), 60
        )
    errors = [s.error for s in subscribers if s.error is not None]
    if errors:
        console.print(f"[red]{len(errors)} subscriber(s) failed to connect: {errors[0]!r}")
        return 1
    console.print(f"{len(subscribers)} subscribers ready in {time.perf_counter() - started:.1f} s")

    results = []
    paced = await drive(apis, rooms, 0, args.moves, rate=args.rate, in_flight=1)
    await settle(subscribers, paced, 30)
    results.append(measure(f"paced {args.rate:g}/s", subscribers, paced, watch.heard))
    flood = await drive(apis, rooms, args.moves, args.moves, rate=None, in_flight=args.in_flight)
    await settle(subscribers, flood, 60)
    results.append(measure(f"flood ×{args.in_flight}", subscribers, flood, watch.heard))

    for s in subscribers:
        assert s.task is not None
        s.task.cancel()
    await asyncio.gather(*(s.task for s in subscribers if s.task), return_exceptions=True)
    bad, failed = check_order(subscribers)
    report(results, len(subscribers), bad, failed)
    missing = sum(r.expected - r.deliveries for r in results)
    return 1 if bad or failed or missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 subscribers, fewer moves (CI)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--deals", type=int, default=50)
    parser.add_argument("--moves", type=int, default=300, help="moves per phase")
    parser.add_argument("--rate", type=float, default=20.0, help="moves per second when paced")
    parser.add_argument("--in-flight", type=int, default=8, help="concurrent moves when flooding")
    parser.add_argument("--database-url")
    parser.add_argument("--keep-logs", help="a folder for the API processes' logs")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.deals, args.moves = 100, 10, 60
    url = (
        args.database_url
        or os.environ.get("DEALROOM_BENCH_DATABASE_URL")
        or os.environ.get("DEALROOM_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    scratch = f"dealroom_bench_realtime_{os.getpid()}"
    with scratch_database(url, scratch) as db_url, tempfile.TemporaryDirectory() as logs:
        if args.keep_logs:
            logs = args.keep_logs
        db = Database(make_engine(db_url, pool_size=4))
        rooms = seed(db, args.deals)
        db.engine.dispose()
        console.print(f"{len(rooms)} deals seeded; starting two API processes")
        apis = api_servers(db_url, Path(logs))
        watch = CommitWatch(
            make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        try:
            with running(*apis, timeout=60):
                watch.start()
                watch.listening.wait(10)
                try:
                    code = asyncio.run(run(args, apis, rooms, watch))
                finally:
                    watch.done.set()
                    watch.join(timeout=5)
        except ServerDidNotStart as exc:
            raise SystemExit(str(exc)) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
