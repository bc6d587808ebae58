"""Server-side commands: `serve`, `demo`, `db upgrade`, `users add`, `audit verify|export`.

`register(app)` adds them to the `dealroom` command. Configuration comes from the
environment (`DEALROOM_DATABASE_URL` above all), read through `config.get_config()`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from dealroom.config import Config, get_config
from dealroom.db import models as m
from dealroom.db.migrate import current_revision, head_revision, migrate
from dealroom.db.session import Database, make_engine
from dealroom.domain.errors import Duplicate
from dealroom.services.uow import session_scope

if TYPE_CHECKING:
    from dealroom.demo.data import DemoResult

DEMO_DB = "dealroom-demo.db"


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, details: list[str] | None = None) -> NoReturn:
    console = _err()
    console.print(f"[bold red]✗[/] {escape(message)}")
    for line in details or []:
        console.print(f"  [red]•[/] {escape(line)}")
    raise typer.Exit(1)


# --- the database ---------------------------------------------------------------------


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def _database(config: Config, *, migrate_sqlite: bool = True) -> Iterator[Database]:
    """The configured database; on SQLite, migrated first (it is a file on this machine)."""
    engine = make_engine(config.database_url)
    if not migrate_sqlite and engine.dialect.name == "sqlite":
        name = engine.url.database
        if name and name != ":memory:" and not Path(name).exists():
            engine.dispose()
            _fail(f"There is no database file {name}; check DEALROOM_DATABASE_URL.")
    try:
        if migrate_sqlite and engine.dialect.name == "sqlite":
            migrate(engine)
        else:
            _require_head(engine)
        yield Database(engine)
    except OperationalError as exc:
        _fail(f"The database at {_safe_url(engine)} is unavailable.", [str(exc.orig)])
    finally:
        engine.dispose()


def _require_head(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        _fail(
            f"The database at {_safe_url(engine)} is at revision {current or 'none'}, "
            f"not {head}: run `dealroom db upgrade` first."
        )


# --- serving --------------------------------------------------------------------------


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
            _fail(
                "--workers above 1 needs PostgreSQL: SQLite allows one writer, and its "
                "realtime fan-out and timers run inside one process.",
                ["Set DEALROOM_DATABASE_URL=postgresql://… or drop --workers."],
            )
        engine = make_engine(config.database_url)
        try:
            revision = migrate(engine)
        except OperationalError as exc:
            _fail(f"Cannot open the SQLite database {_safe_url(engine)}.", [str(exc.orig)])
        finally:
            engine.dispose()
        _out().print(f"[green]✓[/] database {escape(config.database_url)} at revision {revision}")
        # Embedded mode: one process serves and fires timers, sends email and webhooks.
        os.environ["DEALROOM_EMBEDDED_WORKER"] = "1"
        _out().print("[green]✓[/] embedded worker: timers, email and webhooks run in this process")
    _out().print(f"[bold]dealroom[/] on [link]http://{host}:{port}[/] (API docs at /docs)")
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
    out = _out()
    try:
        revision = migrate(engine)
        now = datetime.now(UTC)
        with Progress(
            TextColumn("[bold]Building the demo"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=out,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=demo_data.step_count())

            def advance(label: str) -> None:
                progress.update(task, advance=1, description=escape(label))

            result = demo_data.load(database, config, now, on_step=advance)
    except Exception:
        engine.dispose()
        raise
    out.print(f"[green]✓[/] demo database {escape(str(path))} (revision {revision})")
    out.print(_logins_table(result))
    out.print(_deals_table(result))
    base = f"http://{host}:{port}"
    from dealroom.notify.transports import mail_destination

    out.print(f"[bold]Emails[/] go to {escape(str(mail_destination(config)))}")
    out.print(f"[bold]Open[/] [link]{base}[/]  ·  API docs [link]{base}/docs[/]")
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


# --- db -------------------------------------------------------------------------------

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (Alembic) to DEALROOM_DATABASE_URL."""
    config = get_config()
    engine = make_engine(config.database_url)
    try:
        before = current_revision(engine)
        after = migrate(engine)
    except (OperationalError, ProgrammingError) as exc:
        _fail(f"Cannot migrate {_safe_url(engine)}.", [str(exc.orig)])
    finally:
        engine.dispose()
    if before == after:
        _out().print(f"[green]✓[/] {escape(_safe_url(engine))} already at revision {after} (head)")
    else:
        _out().print(
            f"[green]✓[/] {escape(_safe_url(engine))} upgraded from {before or 'empty'} "
            f"to revision {after} (head)"
        )


# --- users ----------------------------------------------------------------------------

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="Sign-in email (unique).")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    password: Annotated[str, typer.Option("--password", help="At least 8 characters.")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    operator: Annotated[bool, typer.Option("--operator", help="Give the operator role.")] = False,
    organization: Annotated[str | None, typer.Option(help="Company name.")] = None,
    kyc: Annotated[bool, typer.Option("--kyc", help="Mark identity as verified.")] = False,
) -> None:
    """Add a user; with --admin, the first admin who then adds others over the API."""
    from dealroom.api.schemas import UserCreate
    from dealroom.services import accounts

    roles = [r for r, on in (("admin", admin), ("operator", operator)) if on]
    try:
        body = UserCreate.model_validate(
            {
                "email": email,
                "name": name,
                "password": password,
                "organization": organization,
                "roles": roles,
                "kyc_verified": kyc,
            }
        )
    except ValidationError as exc:
        _fail(
            "The user was not added:",
            [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()],
        )
    with _database(get_config()) as database:
        try:
            with session_scope(database) as s:
                user = accounts.create_user(
                    s,
                    email=body.email,
                    name=body.name,
                    password=body.password,
                    now=datetime.now(UTC),
                    organization=body.organization,
                    roles=body.roles,
                    kyc_verified=body.kyc_verified,
                )
                summary = (user.id, user.email, ", ".join(user.roles) or "user")
        except Duplicate as exc:
            _fail(exc.detail)
    _out().print(f"[green]✓[/] added {escape(summary[1])} ({escape(summary[2])}), id {summary[0]}")


# --- audit ----------------------------------------------------------------------------

audit_app = typer.Typer(help="Deal audit trails.", no_args_is_help=True)


class ExportFormat(StrEnum):
    json = "json"
    csv = "csv"


def _find_deal(database: Database, ref_or_id: str) -> m.Deal:
    key = ref_or_id.strip()
    with session_scope(database, write=False) as s:
        deal = s.execute(
            select(m.Deal).where((m.Deal.id == key) | (m.Deal.ref == key.upper()))
        ).scalar_one_or_none()
    if deal is None:
        _fail(f"There is no deal {key!r} (give its id or its ref, e.g. DEAL-2026-0042).")
    return deal


@audit_app.command("verify")
def audit_verify(
    deal: Annotated[str, typer.Argument(help="Deal id or ref (DEAL-2026-0042).")],
) -> None:
    """Recompute a deal's hash chain; exit 1 if it does not hold."""
    from dealroom.services import audit

    with _database(get_config(), migrate_sqlite=False) as database:
        found = _find_deal(database, deal)
        with session_scope(database, write=False) as s:
            result = audit.verify_deal(s, found)
    out = _out()
    if result.valid:
        out.print(
            f"[green]✓ valid[/] {found.ref}: {result.events} events, head hash {result.head_hash}"
        )
        return
    out.print(
        f"[bold red]✗ invalid[/] {found.ref}: first bad seq {result.first_bad_seq} "
        f"({escape(result.reason or 'hash mismatch')}), {result.events} events checked"
    )
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    deal: Annotated[str, typer.Argument(help="Deal id or ref (DEAL-2026-0042).")],
    format: Annotated[ExportFormat, typer.Option("--format", help="json or csv.")] = (
        ExportFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export a deal's whole audit trail, with its verification, as JSON or CSV."""
    from dealroom.services import audit

    with _database(get_config(), migrate_sqlite=False) as database:
        found = _find_deal(database, deal)
        with session_scope(database, write=False) as s:
            verification = audit.verify_deal(s, found)
            events = audit.deal_events(s, found.id)
            chunks = (
                audit.export_json(found, events, verification)
                if format is ExportFormat.json
                else audit.export_csv(events)
            )
            if output is None:
                for chunk in chunks:
                    sys.stdout.write(chunk)
                sys.stdout.flush()
            else:
                try:
                    with output.open("w", encoding="utf-8", newline="") as f:
                        for chunk in chunks:
                            f.write(chunk)
                except OSError as exc:
                    _fail(f"Cannot write {output}: {exc.strerror}")
    if output is not None:
        state = "valid" if verification.valid else "INVALID"
        _err().print(
            f"[green]✓[/] wrote {verification.events} events of {found.ref} to "
            f"{escape(str(output))} (chain {state})"
        )


def register(app: typer.Typer) -> None:
    """Add `serve`, `demo`, `db`, `users` and `audit` to the `dealroom` command."""
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
