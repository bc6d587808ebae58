"""PostgreSQL restart during load, on a throwaway PostgreSQL instance of our own (never the
machine's shared cluster): while it is down clients get 503 NEG-010 with Retry-After,
never a 500; after it is back the service recovers by itself (time to recovery measured).

    python -m prove.pgrestart [--down 6] [--threads 4]
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dealroom.db.session import Database, make_engine
from dealroom_harness.servers import Server, free_port, running
from prove import cluster
from prove.checks import check_all
from prove.load import Load, Party


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class OwnPostgres:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(self.datadir), "-w", "-t", "30", *args]),
                       check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c max_connections=100"
        )
        self.ctl("-o", opts, "-l", str(self.datadir / "server.log"), "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """initdb into a temporary directory, start on a free port, remove afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dealroom-pg-"))
    datadir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_postgres([_bin("initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres"]),
                   check=True, timeout=120, stdout=subprocess.DEVNULL)  # fmt: skip
    pg = OwnPostgres(datadir, free_port())
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            pg.ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Probe:
    """Polls /healthz and an authenticated read every 0.2 s; keeps (t, status, code, retry)."""

    api: Server
    who: cluster.Person
    samples: list[tuple[float, str, int, str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, t0: float, limit: float) -> None:
        end = time.monotonic() + limit
        while not self.stop.is_set() and time.monotonic() < end:
            for what, path, headers in (("healthz", "/healthz", {}),
                                        ("deals", "/v1/deals?limit=5", self.who.headers)):  # fmt: skip
                try:
                    r = httpx.get(self.api.url + path, headers=headers, timeout=5)
                    code = r.json().get("code", "") if r.status_code >= 400 else ""
                    self.samples.append((time.monotonic() - t0, what, r.status_code, str(code), r.headers.get("retry-after", "")))  # fmt: skip
                except (httpx.TransportError, ValueError) as exc:
                    self.samples.append((time.monotonic() - t0, what, 0, type(exc).__name__, ""))
            time.sleep(0.2)


def run(down: float = 6.0, threads: int = 4, before: float = 6.0) -> bool:
    started = time.monotonic()
    with (
        own_postgres() as pg,
        cluster.scratch_database(pg.url, "pgrestart") as url,
        cluster.log_dir() as logs,
    ):
        db = Database(make_engine(url, pool_size=2))
        parties = []
        for i in range(threads):
            seller = cluster.add_person(db, f"seller{i}@parts.test")
            parties.append(Party(cluster.add_person(db, f"buyer{i}@acme.test"), seller, [cluster.add_listing(db, seller) for _ in range(3)]))  # fmt: skip
        db.engine.dispose()
        apis = [cluster.api_proc(url, logs, f"api{i}") for i in range(2)]
        worker = cluster.worker_proc(url, logs, "worker")
        with running(*apis, worker):
            load = Load(apis, parties, quote_ttl=(30.0, 60.0), think=0.05)
            total = before + down + 20
            ts = load.start(threads, total)
            probe = Probe(apis[0], parties[0].buyer)
            t0 = time.monotonic()
            pt = threading.Thread(target=probe.run, args=(t0, total + 10), daemon=True)
            pt.start()
            time.sleep(before)
            t_stop = time.monotonic() - t0
            pg.stop()
            time.sleep(down)
            t_start = time.monotonic() - t0
            pg.start()
            time.sleep(20)
            load.join(ts, 30)
            probe.stop.set()
            pt.join(10)
            workers_alive = worker.running()
            apis_alive = all(a.running() for a in apis)
            db = Database(make_engine(url, pool_size=2))
            after = check_all(db, load.record)
            db.engine.dispose()
    deals_s = [s for s in probe.samples if s[1] == "deals"]
    health = [s for s in probe.samples if s[1] == "healthz"]
    during = [s for s in deals_s if t_stop + 0.5 < s[0] < t_start]
    proper = [s for s in during if s[2] == 503 and s[3] == "NEG-010" and s[4]]
    five_hundreds = [s for s in probe.samples if s[2] >= 500 and s[2] != 503]
    recovered = next((s[0] for s in deals_s if s[0] > t_start and s[2] == 200), None)
    h_during = sorted({s[2] for s in health if t_stop + 0.5 < s[0] < t_start})
    h_after = next((s[0] for s in health if s[0] > t_start and s[2] == 200), None)
    rec = f"{recovered - t_start:.2f} s" if recovered is not None else "never"
    checks = [
        ("503 NEG-010 with Retry-After while down", bool(during) and len(proper) == len(during),
         f"{len(proper)}/{len(during)} authenticated reads during the {down:g} s outage; "
         f"Retry-After={sorted({s[4] for s in proper})}"),
        ("never a 500", not five_hundreds, f"{len(five_hundreds)} probe 5xx other than 503"),
        ("recovers by itself", recovered is not None and recovered - t_start < 15,
         f"first 200 on /v1/deals {rec} after PostgreSQL accepted connections again"),
        ("/healthz", h_after is not None,
         f"statuses while down {h_during}; 200 again {h_after - t_start if h_after else float('nan'):.2f} s after restart"),
        ("processes survived", apis_alive and workers_alive, f"apis alive={apis_alive}, worker alive={workers_alive}"),
        *after,
    ]  # fmt: skip
    return cluster.report(f"postgres restart ({time.monotonic() - started:.0f} s)", checks)


if __name__ == "__main__":
    cluster.main(run, __doc__, down=6.0, threads=4)
