"""Servers on free ports: real processes (`dealroom serve`, uvicorn, a worker), started,
waited for until /healthz answers, restarted, killed; or an app served by uvicorn in a
thread of this process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
#: What uvicorn logs (at level info) when a worker process is ready to serve.
STARTED = "Application startup complete."


class ServerDidNotStart(RuntimeError):
    """A server exited, or did not answer /healthz in time; the message names its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def uvicorn_command(
    *options: str, app: str = "dealroom.app:create_app", factory: bool = True
) -> list[str]:
    """uvicorn in a new Python process, serving `app` (an app factory unless `factory` is
    False)."""
    return [sys.executable, "-m", "uvicorn", *(["--factory"] if factory else []), app, *options]


def dealroom_command(*args: str) -> list[str]:
    """The `dealroom` command line in a new Python process."""
    return [sys.executable, "-m", "dealroom", *args]


class Process:
    """A command run as a real process, its output in `log`. It can be started again after
    a stop or a kill; the log then grows instead of starting over."""

    def __init__(
        self, cmd: list[str], *, log: Path, env: dict[str, str] | None = None, name: str = ""
    ) -> None:
        self.cmd = cmd
        self.env = {**os.environ, **(env or {})}
        self.log = log
        self.name = name or log.stem
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> None:
        with self.log.open("ab" if self._starts else "wb") as out:
            self.process = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self._starts += 1

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
        if not self.running():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Server(Process):
    """A server process on a free port of 127.0.0.1: `cmd` is given `--host` and `--port`
    (and `--workers` when there are several), as uvicorn and `dealroom serve` take them."""

    def __init__(
        self,
        cmd: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        name: str = "",
        workers: int = 1,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.workers = workers
        options = ["--host", HOST, "--port", str(self.port)]
        if workers > 1:
            options += ["--workers", str(workers)]
        super().__init__([*cmd, *options], log=log, env=env, name=name)

    def wait_healthy(self, timeout: float = 30.0, *, probe_timeout: float = 1.0) -> None:
        """Until /healthz answers 200; ServerDidNotStart if the process exits first or
        `timeout` seconds pass. With several workers /healthz answers as soon as one
        accepts, so it also waits until each has logged its start (uvicorn at level info)."""
        deadline = time.monotonic() + timeout
        while not self._healthy(probe_timeout):
            self._check(deadline, "did not start")
            time.sleep(0.1)
        if self.workers > 1:
            while self.log.read_text(errors="replace").count(STARTED) < self.workers:
                self._check(deadline, "did not start all its workers")
                time.sleep(0.1)

    def _healthy(self, probe_timeout: float) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=probe_timeout).status_code == 200
        except httpx.TransportError:
            return False

    def _check(self, deadline: float, what: str) -> None:
        if self.running() and time.monotonic() <= deadline:
            return
        why = what if self.running() else "exited"
        tail = self.log.read_text(errors="replace")[-3000:]
        raise ServerDidNotStart(f"{self.name} {why}; the end of {self.log}:\n{tail}")


@contextmanager
def running(*processes: Process, timeout: float = 30.0) -> Iterator[None]:
    """Start every process, wait until each server answers /healthz, and stop them all on
    the way out, whatever happened meanwhile (a process killed and started again too)."""
    try:
        for p in processes:
            p.start()
        for p in processes:
            if isinstance(p, Server):
                p.wait_healthy(timeout)
        yield
    finally:
        for p in processes:
            p.stop()


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread of this process, on a socket bound before
    the thread starts (no other process can take the port in between)."""

    def __init__(self, app: Any, *, port: int = 0, graceful_seconds: int = 2) -> None:
        import uvicorn

        self.app = app
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((HOST, port))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=graceful_seconds
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )

    def start(self, timeout: float = 20.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise ServerDidNotStart("uvicorn stopped while starting")
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"uvicorn did not start within {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask uvicorn to exit; answers whether its thread ended within `timeout`."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        self.socket.close()
        return not self.thread.is_alive()
