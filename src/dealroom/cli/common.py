"""What every command group shares: printing to the terminal, failing with exit code 1, and
opening the configured database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from dealroom.db.migrate import current_revision, head_revision, upgrade
from dealroom.db.session import Database, make_engine

# --- the terminal -----------------------------------------------------------------------------


def out() -> Console:
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, details: list[str] | None = None) -> NoReturn:
    """Print what went wrong (and each detail under it) on stderr, then exit 1."""
    console = err()
    console.print(f"[bold red]✗[/] {escape(message)}")
    for line in details or []:
        console.print(f"  [red]•[/] {escape(line)}")
    raise typer.Exit(1)


# --- the database -----------------------------------------------------------------------------


class DatabaseUnusable(RuntimeError):
    """The configured database cannot be used: unreachable, not at the head revision, or (for
    commands that only read) not there at all. `summary` says which; `reason` is what the
    driver said, if anything. `str()` puts both on one line."""

    def __init__(self, summary: str, reason: str | None = None) -> None:
        super().__init__(summary if reason is None else f"{summary.rstrip('.')}: {reason}")
        self.summary = summary
        self.reason = reason

    @property
    def details(self) -> list[str]:
        return [] if self.reason is None else [self.reason]


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _sqlite_file_missing(engine: Engine) -> bool:
    name = engine.url.database
    return (
        engine.dialect.name == "sqlite"
        and bool(name)
        and name != ":memory:"
        and not Path(str(name)).exists()
    )


@contextmanager
def _at_head(engine: Engine, *, migrate_sqlite: bool) -> Iterator[Database]:
    """The engine's database once it is at the head revision. A SQLite file is on this
    machine, so it is migrated there first (as `dealroom serve` does) when `migrate_sqlite`;
    PostgreSQL must already be there (`dealroom db upgrade`). The engine is disposed after."""
    try:
        if migrate_sqlite and engine.dialect.name == "sqlite":
            upgrade(engine)
        else:
            current, head = current_revision(engine), head_revision()
            if current != head:
                raise DatabaseUnusable(
                    f"The database at {safe_url(engine)} is at revision {current or 'none'}, "
                    f"not {head}: run `dealroom db upgrade` first."
                )
        yield Database(engine)
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseUnusable(
            f"The database at {safe_url(engine)} is unavailable.", str(exc.orig)
        ) from exc
    finally:
        engine.dispose()


@contextmanager
def open_database(url: str, *, migrate_sqlite: bool = True) -> Iterator[Database]:
    """The database at `url`, at the head revision, or DatabaseUnusable. Without
    `migrate_sqlite` a SQLite file must already exist and be at the head revision."""
    engine = make_engine(url)
    if not migrate_sqlite and _sqlite_file_missing(engine):
        engine.dispose()
        raise DatabaseUnusable(
            f"There is no database file {engine.url.database}; check DEALROOM_DATABASE_URL."
        )
    with _at_head(engine, migrate_sqlite=migrate_sqlite) as database:
        yield database


@contextmanager
def database_if_any(url: str) -> Iterator[Database | None]:
    """As `open_database`, except that a SQLite file that does not exist yet is left alone
    and None is yielded: for reading, there is nothing in it."""
    engine = make_engine(url)
    if _sqlite_file_missing(engine):
        engine.dispose()
        yield None
        return
    with _at_head(engine, migrate_sqlite=True) as database:
        yield database


@contextmanager
def database_or_exit(url: str, *, migrate_sqlite: bool = True) -> Iterator[Database]:
    """`open_database` for a command: when the database cannot be used, say why and exit 1."""
    try:
        with open_database(url, migrate_sqlite=migrate_sqlite) as database:
            yield database
    except DatabaseUnusable as exc:
        fail(exc.summary, exc.details)
