"""Soak: mixed load (deal walks, messages, open SSE streams) for a while, sampling the RSS
of the API processes and PostgreSQL connection counts; memory and connections must stay
flat (after a warm-up: growth under 25 % and a small slope; connections no higher than in
the first half).

    python -m prove.soak --minutes 30        # the full run
    python -m prove.soak --minutes 1         # the quick one
"""

from __future__ import annotations

import threading
import time

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dealroom.db.session import Database, make_engine
from dealroom_harness.servers import Server, running
from prove import cluster
from prove.checks import check_all, wait_timers_drained
from prove.load import Load, Party


def stream_reader(api: Server, who: cluster.Person, stop: threading.Event, end: float, opened: list[int]) -> None:  # fmt: skip
    """Keep one SSE stream open, reconnecting every ~10 s; every read is bounded."""
    while not stop.is_set() and time.monotonic() < end:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=5.0)) as c,
                c.stream("GET", f"{api.url}/v1/me/stream", headers=who.headers) as r,
            ):
                opened.append(r.status_code)
                until = min(time.monotonic() + 10, end)
                for _ in r.iter_lines():
                    if stop.is_set() or time.monotonic() > until:
                        break
        except httpx.HTTPError:
            time.sleep(0.5)


def run(minutes: float = 30.0, threads: int = 6, streams: int = 8, every: float = 5.0, pg_url: str = cluster.PG_URL) -> bool:  # fmt: skip
    seconds = minutes * 60
    started = time.monotonic()
    with cluster.scratch_database(pg_url, "soak") as url, cluster.log_dir() as logs:
        dbname = make_url(url).database
        db = Database(make_engine(url, pool_size=2))
        parties = []
        for i in range(threads):
            seller = cluster.add_person(db, f"seller{i}@parts.test")
            parties.append(Party(cluster.add_person(db, f"buyer{i}@acme.test"), seller, [cluster.add_listing(db, seller) for _ in range(3)]))  # fmt: skip
        apis = [cluster.api_proc(url, logs, f"api{i}") for i in range(2)]
        worker = cluster.worker_proc(url, logs, "worker")
        stat = create_engine(make_url(url).set(database="postgres"), pool_size=1, pool_pre_ping=True)  # fmt: skip
        rss: dict[str, list[tuple[float, float]]] = {a.name: [] for a in apis}
        conns: list[tuple[float, float]] = []
        try:
            with running(*apis, worker):
                load = Load(apis, parties, quote_ttl=(5.0, 30.0), think=0.05)
                ts = load.start(threads, seconds)
                stop = threading.Event()
                opened: list[int] = []
                end = time.monotonic() + seconds
                readers = [threading.Thread(target=stream_reader, args=(apis[i % 2], parties[i % len(parties)].seller, stop, end, opened), daemon=True) for i in range(streams)]  # fmt: skip
                for r in readers:
                    r.start()
                t0 = time.monotonic()
                for _ in range(int(seconds / every) + 1):
                    if time.monotonic() - t0 > seconds:
                        break
                    t = time.monotonic() - t0
                    for a in apis:
                        rss[a.name].append((t, cluster.rss_kib(a.pid) / 1024))
                    with stat.connect() as c:
                        n = c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": dbname}).scalar_one()  # fmt: skip
                    conns.append((t, float(n)))
                    time.sleep(every)
                stop.set()
                load.join(ts, 30)
                for r in readers:
                    r.join(15)
                drained = wait_timers_drained(db, 40)
                after = check_all(db, load.record)
        finally:
            stat.dispose()
            db.engine.dispose()
    checks: list[tuple[str, bool, str]] = []
    for name, samples in rss.items():
        warm = [s for s in samples if s[0] >= seconds * 0.2] or samples
        first, last = warm[0][1], warm[-1][1]
        slope = cluster.slope_per_min(warm)
        ok = last <= first * 1.25 and slope < max(1.0, first * 0.01)
        checks.append((f"RSS of {name} flat", ok,
                       f"{first:.1f} -> {last:.1f} MiB after warm-up (peak {max(v for _, v in samples):.1f}), "
                       f"slope {slope:+.2f} MiB/min over {len(warm)} samples"))  # fmt: skip
    half = len(conns) // 2 or 1
    c1, c2 = max(v for _, v in conns[:half]), max(v for _, v in conns[half:] or conns)
    checks.append(("PostgreSQL connections flat", c2 <= c1 + 2,
                   f"max {c1:.0f} in the first half, {c2:.0f} in the second; slope "
                   f"{cluster.slope_per_min(conns):+.2f}/min; samples {[int(v) for _, v in conns][:40]}"))  # fmt: skip
    walks = len(load.record.deals)
    checks.append(("load ran", walks > 0 and sum(1 for s in opened if s == 200) >= streams,
                   f"{walks} deals, {len(load.record.messages)} messages, {len(opened)} stream "
                   f"openings over {minutes:g} min; timers overdue after: {drained}"))  # fmt: skip
    checks += after
    return cluster.report(f"soak {minutes:g} min ({time.monotonic() - started:.0f} s)", checks)


if __name__ == "__main__":
    cluster.main(run, __doc__, minutes=30.0, threads=6, streams=8, every=5.0)
