"""Crash: kill -9 an API process and a worker in the middle of a load run on PostgreSQL,
restart them, then check that every acknowledged write is stored, no deal is half-written,
every hash chain verifies and every due timer fired exactly once.

    python -m prove.crash [--seconds 40] [--threads 8]
"""

from __future__ import annotations

import time

from dealroom.db.session import Database, make_engine
from dealroom_harness.servers import running
from prove import cluster
from prove.checks import check_all, wait_timers_drained
from prove.load import Load, Party


def run(seconds: float = 40.0, threads: int = 8, pg_url: str = cluster.PG_URL) -> bool:
    started = time.monotonic()
    with cluster.scratch_database(pg_url, "crash") as url, cluster.log_dir() as logs:
        db = Database(make_engine(url, pool_size=4))
        parties = []
        for i in range(threads):
            seller = cluster.add_person(db, f"seller{i}@parts.test")
            parties.append(Party(cluster.add_person(db, f"buyer{i}@acme.test"), seller,
                                 [cluster.add_listing(db, seller) for _ in range(3)]))  # fmt: skip
        apis = [cluster.api_proc(url, logs, f"api{i}") for i in range(2)]
        workers = [cluster.worker_proc(url, logs, f"worker{i}") for i in range(2)]
        try:
            with running(*apis, *workers):
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
                apis[0].wait_healthy()
                joined = load.join(ts, seconds + 30)
                drained = wait_timers_drained(db, 30)
                checks = [("load threads finished", joined, f"{threads} threads, {seconds:g} s"),
                          ("kill -9 mid-run", True, f"api pid {killed[0]} and worker pid {killed[1]} "
                           f"killed at t={at:.1f}s, restarted 2 s later"),
                          ("timers drained", drained == 0, f"{drained} overdue after 30 s")]  # fmt: skip
                checks += check_all(db, load.record)
        finally:
            db.engine.dispose()
    return cluster.report(f"crash ({time.monotonic() - started:.0f} s)", checks)


if __name__ == "__main__":
    cluster.main(run, __doc__, seconds=40.0, threads=8)
