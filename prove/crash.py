"""Crash: kill -9 an API process and a worker in the middle of a load run on PostgreSQL,
restart them, then check that every acknowledged write is stored, no deal is half-written,
every hash chain verifies and every due timer fired exactly once.

    python -m prove.crash [--seconds 40] [--threads 8]
"""

from __future__ import annotations

import argparse
import sys
import time

from dealroom.db.session import Database, make_engine
from prove.checks import check_all, wait_timers_drained
from prove.cluster import (
    PG_URL,
    add_listing,
    add_person,
    api_proc,
    log_dir,
    report,
    scratch_database,
    wait_up,
    worker_proc,
)  # fmt: skip
from prove.load import Load, Party


def run(seconds: float = 40.0, threads: int = 8, pg_url: str = PG_URL) -> bool:
    started = time.monotonic()
    with scratch_database(pg_url, "crash") as url, log_dir() as logs:
        db = Database(make_engine(url, pool_size=4))
        parties = []
        for i in range(threads):
            seller = add_person(db, f"seller{i}@parts.test")
            parties.append(Party(add_person(db, f"buyer{i}@acme.test"), seller,
                                 [add_listing(db, seller) for _ in range(3)]))  # fmt: skip
        apis = [api_proc(url, logs, f"api{i}") for i in range(2)]
        workers = [worker_proc(url, logs, f"worker{i}") for i in range(2)]
        try:
            for p in apis + workers:
                p.start()
            for a in apis:
                wait_up(a)
            load = Load(apis, parties)
            ts = load.start(threads, seconds)
            time.sleep(seconds * 0.4)
            killed = (apis[0].pid, workers[0].pid)
            apis[0].kill9()
            workers[0].kill9()
            at = time.monotonic() - started
            time.sleep(2)
            apis[0].start()
            workers[0].start()
            wait_up(apis[0])
            joined = load.join(ts, seconds + 30)
            drained = wait_timers_drained(db, 30)
            checks = [("load threads finished", joined, f"{threads} threads, {seconds:g} s"),
                      ("kill -9 mid-run", True, f"api pid {killed[0]} and worker pid {killed[1]} "
                       f"killed at t={at:.1f}s, restarted 2 s later"),
                      ("timers drained", drained == 0, f"{drained} overdue after 30 s")]  # fmt: skip
            checks += check_all(db, load.record)
        finally:
            for p in apis + workers:
                p.stop()
            db.engine.dispose()
    return report(f"crash ({time.monotonic() - started:.0f} s)", checks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    sys.exit(0 if run(args.seconds, args.threads) else 1)


if __name__ == "__main__":
    main()
