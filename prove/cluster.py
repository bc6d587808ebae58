"""A throwaway dealroom deployment on PostgreSQL: a database, API and worker processes,
people with tokens, and HTTP helpers that never wait without a timeout."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dealroom.config import normalize_url
from dealroom.db import models as m
from dealroom.db.migrate import upgrade
from dealroom.db.session import Database, make_engine
from dealroom.security import hash_password, issue_token
from dealroom.services.uow import session_scope

SECRET = "dealroom-prove-signing-key-32-bytes-at-least!"
PG_URL = os.environ.get("DEALROOM_PROVE_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_HASH = hash_password("correct horse battery")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def scratch_database(base_url: str = PG_URL, prefix: str = "prove") -> Iterator[str]:
    """A fresh, migrated database on the server, dropped afterwards. Yields its URL."""
    base = make_url(normalize_url(base_url))
    name = f"dealroom_{prefix}_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Person:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_person(db: Database, email: str, *, roles: tuple[str, ...] = ()) -> Person:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        user = m.User(email=email, name=email.split("@")[0].title(), password_hash=_HASH,
                      roles=list(roles), kyc_verified=True, plan="paid", timezone="UTC",
                      created_at=now - timedelta(days=365))  # fmt: skip
        s.add(user)
        s.flush()
        uid = user.id
    return Person(uid, issue_token(SECRET, uid, now=now, ttl_seconds=6 * 3600)[0])


def add_listing(db: Database, seller: Person, *, process: str = "rfq") -> str:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        row = m.Listing(owner_id=seller.id, title="Industrial bearings", currency="SAR",
                        unit_price=Decimal("50.00"), quantity=1000, process=process,
                        created_at=now, updated_at=now)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


@dataclass
class Proc:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DEALROOM_DATABASE_URL": db_url, "DEALROOM_SECRET_KEY": SECRET,
            "DEALROOM_SSE_HEARTBEAT": "1", "DEALROOM_REALTIME_POLL": "1"}  # fmt: skip


def api_proc(db_url: str, logs: Path, name: str) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "dealroom.app:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--timeout-graceful-shutdown", "2"]  # fmt: skip
    return Proc(name, cmd, _env(db_url), logs / f"{name}.log", url=f"http://127.0.0.1:{port}")


def worker_proc(db_url: str, logs: Path, name: str) -> Proc:
    cmd = [sys.executable, "-m", "dealroom", "worker", "--interval", "0.5"]
    return Proc(name, cmd, _env(db_url), logs / f"{name}.log")


def wait_up(api: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert api.process is not None
        if api.process.poll() is not None:
            raise RuntimeError(f"{api.name} exited:\n{api.log.read_text()}")
        try:
            if httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{api.name} did not come up:\n{api.log.read_text()}")


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
