"""`dealroom worker`: fire due timers continuously, or once (cron, catch-up, tests)."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from dealroom.clock import SystemClock
from dealroom.config import get_config
from dealroom.db.session import Database, make_engine
from dealroom.worker import run_forever, run_once

console = Console()


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return SystemClock().now()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not an ISO-8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        once: Annotated[bool, typer.Option("--once", help="Fire what is due and exit.")] = False,
        now: Annotated[
            str | None, typer.Option(help="With --once: the instant to fire at (ISO-8601).")
        ] = None,
        interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 1.0,
    ) -> None:
        """Fire due timers (expiries, auto-transitions, reminders), each exactly once."""
        config = get_config()
        db = Database(make_engine(config.database_url))
        if once:
            result = run_once(db, config, _parse_now(now))
            console.print(
                f"[green]fired {result.fired}[/] timer(s)"
                + (f", {result.skipped_busy} busy (next pass)" if result.skipped_busy else "")
                + (f", {result.stale} stale (cancelled)" if result.stale else "")
                + (f", [red]{result.failed} failed[/]" if result.failed else "")
            )
            raise typer.Exit(1 if result.failed else 0)
        if now is not None:
            raise typer.BadParameter("--now only goes with --once")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        console.print(f"worker polling every {interval:g}s on {db.engine.url.render_as_string()}")
        run_forever(db, config, SystemClock(), stop=stop, interval=interval)
