"""A throwaway dealroom deployment on PostgreSQL: a database, API and worker processes,
people with tokens, and HTTP helpers that never wait without a timeout."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from dealroom_harness import databases
from dealroom_harness.people import Person
from dealroom_harness.people import add_person as _add_person
from dealroom_harness.servers import Process, Server, dealroom_command, uvicorn_command

SECRET = "dealroom-prove-signing-key-32-bytes-at-least!"
PG_URL = os.environ.get("DEALROOM_PROVE_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def scratch_database(base_url: str = PG_URL, prefix: str = "prove") -> AbstractContextManager[str]:
    """A fresh, migrated database on the server, dropped afterwards. Yields its URL."""
    return databases.scratch_database(base_url, f"dealroom_{prefix}_{os.getpid()}")


def add_person(db: Database, email: str, *, roles: tuple[str, ...] = ()) -> Person:
    return _add_person(db, email, secret=SECRET, roles=roles, token_seconds=6 * 3600)


def add_listing(db: Database, seller: Person, *, process: str = "rfq") -> str:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        row = m.Listing(owner_id=seller.id, title="Industrial bearings", currency="SAR",
                        unit_price=Decimal("50.00"), quantity=1000, process=process,
                        created_at=now, updated_at=now)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def _env(db_url: str) -> dict[str, str]:
    return {"DEALROOM_DATABASE_URL": db_url, "DEALROOM_SECRET_KEY": SECRET,
            "DEALROOM_SSE_HEARTBEAT": "1", "DEALROOM_REALTIME_POLL": "1"}  # fmt: skip


def api_proc(db_url: str, logs: Path, name: str) -> Server:
    """An API process, `uvicorn --factory dealroom.app:create_app` as deployed."""
    cmd = uvicorn_command("--log-level", "warning", "--timeout-graceful-shutdown", "2")
    return Server(cmd, env=_env(db_url), log=logs / f"{name}.log", name=name)


def worker_proc(db_url: str, logs: Path, name: str) -> Process:
    cmd = dealroom_command("worker", "--interval", "0.5")
    return Process(cmd, env=_env(db_url), log=logs / f"{name}.log", name=name)


@contextmanager
def log_dir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dealroom-prove-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def valid_until(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def report(title: str, checks: list[tuple[str, bool, str]]) -> bool:
    """Print one line per check and the verdict; True when every check passed."""
    print(f"\n== {title}")
    for name, ok, detail in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    passed = all(ok for _, ok, _ in checks)
    print(f"RESULT {title}: {'PASS' if passed else 'FAIL'}")
    return passed


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples)
    return 0.0 if den == 0 else 60 * sum((t - mx) * (v - my) for t, v in samples) / den


JSON = dict[str, Any]


def main(run: Callable[..., bool], doc: str | None, **options: float) -> None:
    """A check's command line: one `--option` per keyword, typed by its default; exits 0
    when every check passed."""
    ap = argparse.ArgumentParser(description=doc)
    for name, default in options.items():
        ap.add_argument(f"--{name}", type=type(default), default=default)
    sys.exit(0 if run(**vars(ap.parse_args())) else 1)
