"""`dealroom serve` and `dealroom demo`: the API and web server, on the configured database or
on a fresh demo database.

Configuration comes from the environment (`DEALROOM_DATABASE_URL` above all), read through
`config.get_config()`.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from dealroom.cli.common import fail, out, safe_url
from dealroom.config import get_config
from dealroom.db.migrate import migrate
from dealroom.db.session import Database, make_engine

if TYPE_CHECKING:
    from dealroom.demo.data import DemoResult

DEMO_DB = "dealroom-demo.db"


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (PostgreSQL only).")
    ] = 1,
) -> None:
    """Run the API and web server (uvicorn). On SQLite, migrates the database first."""
    import uvicorn

    config = get_config()
    if config.is_sqlite:
        if workers > 1:
            fail(
                "--workers above 1 needs PostgreSQL: SQLite allows one writer, and its "
                "realtime fan-out and timers run inside one process.",
                ["Set DEALROOM_DATABASE_URL=postgresql://… or drop --workers."],
            )
        engine = make_engine(config.database_url)
        try:
            revision = migrate(engine)
        except OperationalError as exc:
            fail(f"Cannot open the SQLite database {safe_url(engine)}.", [str(exc.orig)])
        finally:
            engine.dispose()
        out().print(f"[green]✓[/] database {escape(config.database_url)} at revision {revision}")
        # Embedded mode: one process serves and fires timers, sends email and webhooks.
        os.environ["DEALROOM_EMBEDDED_WORKER"] = "1"
        out().print("[green]✓[/] embedded worker: timers, email and webhooks run in this process")
    out().print(f"[bold]dealroom[/] on [link]http://{host}:{port}[/] (API docs at /docs)")
    if workers > 1:
        _keep_tcp_nodelay()
    uvicorn.run(
        "dealroom.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
    )


def _keep_tcp_nodelay() -> None:
    """uvicorn's multiprocess supervisor binds the listening socket with proto 0; accepted
    sockets inherit it and asyncio sets TCP_NODELAY only for IPPROTO_TCP, so with
    --workers > 1 every keep-alive answer waits ~40 ms on the client's delayed ACK
    (uvicorn issue #3149; bench/api.py measured /healthz at 48 ms instead of 4 ms).
    Re-wrap the bound socket as TCP until uvicorn does."""
    import socket

    from uvicorn.config import Config as UvicornConfig

    original = UvicornConfig.bind_socket

    def bind_socket(self: UvicornConfig) -> socket.socket:
        sock = original(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock

    UvicornConfig.bind_socket = bind_socket  # type: ignore[method-assign]


def demo(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    db: Annotated[
        Path, typer.Option("--db", help="SQLite file to create (replaced if it exists).")
    ] = Path(DEMO_DB),
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Build the demo database and exit.")
    ] = False,
) -> None:
    """A fresh SQLite database with sample users, listings and deals, then the server."""
    from dealroom.demo import data as demo_data

    path = db.resolve()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    config = dataclasses.replace(get_config(), database_url=url, run_worker=True)
    engine = make_engine(url)
    database = Database(engine)
    console = out()
    try:
        revision = migrate(engine)
        now = datetime.now(UTC)
        with Progress(
            TextColumn("[bold]Building the demo"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=demo_data.step_count())

            def advance(label: str) -> None:
                progress.update(task, advance=1, description=escape(label))

            result = demo_data.load(database, config, now, on_step=advance)
    except Exception:
        engine.dispose()
        raise
    console.print(f"[green]✓[/] demo database {escape(str(path))} (revision {revision})")
    console.print(_logins_table(result))
    console.print(_deals_table(result))
    base = f"http://{host}:{port}"
    from dealroom.notify.transports import mail_destination

    console.print(f"[bold]Emails[/] go to {escape(str(mail_destination(config)))}")
    console.print(f"[bold]Open[/] [link]{base}[/]  ·  API docs [link]{base}/docs[/]")
    if no_serve:
        engine.dispose()
        return
    import uvicorn

    from dealroom.app import create_app

    uvicorn.run(create_app(config, database=database), host=host, port=port)


def _logins_table(result: DemoResult) -> Table:
    table = Table(title="Sample logins", title_justify="left")
    for column in ("role", "name", "organization", "email", "password"):
        table.add_column(column)
    for p in result.people:
        table.add_row(p.role_label, p.name, p.organization, p.email, p.password)
    return table


def _deals_table(result: DemoResult) -> Table:
    table = Table(title="Sample deals", title_justify="left")
    for column in ("ref", "process", "state", "what"):
        table.add_column(column)
    for ref, process, state, title, _ in result.deals:
        table.add_row(ref, process, state, title)
    return table


def register(app: typer.Typer) -> None:
    """Add `serve` and `demo` to the `dealroom` command."""
    app.command("serve")(serve)
    app.command("demo")(demo)
