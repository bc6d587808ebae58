"""`dealroom db upgrade`: bring the database schema to the head revision (Alembic)."""

from __future__ import annotations

import typer
from rich.markup import escape
from sqlalchemy.exc import OperationalError, ProgrammingError

from dealroom.cli.common import fail, out, safe_url
from dealroom.config import get_config
from dealroom.db.migrate import current_revision, migrate
from dealroom.db.session import make_engine

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (Alembic) to DEALROOM_DATABASE_URL."""
    config = get_config()
    engine = make_engine(config.database_url)
    try:
        before = current_revision(engine)
        after = migrate(engine)
    except (OperationalError, ProgrammingError) as exc:
        fail(f"Cannot migrate {safe_url(engine)}.", [str(exc.orig)])
    finally:
        engine.dispose()
    if before == after:
        out().print(f"[green]✓[/] {escape(safe_url(engine))} already at revision {after} (head)")
    else:
        out().print(
            f"[green]✓[/] {escape(safe_url(engine))} upgraded from {before or 'empty'} "
            f"to revision {after} (head)"
        )
