"""The `dealroom` command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="dealroom: a negotiation engine and deal room for B2B marketplaces.")


@app.callback()
def _root() -> None:
    """dealroom command line."""


def main() -> None:
    app()
