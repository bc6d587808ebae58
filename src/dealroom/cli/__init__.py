"""The `dealroom` command line: one module per command group."""

from __future__ import annotations

import typer

from dealroom.cli import audit as cli_audit
from dealroom.cli import db as cli_db
from dealroom.cli import process as cli_process
from dealroom.cli import server as cli_server
from dealroom.cli import users as cli_users
from dealroom.cli import worker as cli_worker

app = typer.Typer(
    help="dealroom: a negotiation engine and deal room for B2B marketplaces.",
    no_args_is_help=True,
)
app.add_typer(cli_process.app, name="process")
cli_worker.register(app)
cli_server.register(app)
app.add_typer(cli_db.app, name="db")
app.add_typer(cli_users.app, name="users")
app.add_typer(cli_audit.app, name="audit")


@app.callback()
def _root() -> None:
    """dealroom command line."""


@app.command("demo-engine")
def demo_engine() -> None:
    """Walk the rfq reference example (RFQ-2026-0042) through the engine alone and print it."""
    from dealroom.demo.walk import run

    run()


def main() -> None:
    app()
