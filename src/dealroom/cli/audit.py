"""`dealroom audit verify|export`: a deal's hash chain, checked or exported whole."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy import select

from dealroom.cli.common import database_or_exit, err, fail, out
from dealroom.config import get_config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.uow import session_scope

app = typer.Typer(help="Deal audit trails.", no_args_is_help=True)


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
        fail(f"There is no deal {key!r} (give its id or its ref, e.g. DEAL-2026-0042).")
    return deal


@app.command("verify")
def audit_verify(
    deal: Annotated[str, typer.Argument(help="Deal id or ref (DEAL-2026-0042).")],
) -> None:
    """Recompute a deal's hash chain; exit 1 if it does not hold."""
    from dealroom.services.audit import chain

    with database_or_exit(get_config().database_url, migrate_sqlite=False) as database:
        found = _find_deal(database, deal)
        with session_scope(database, write=False) as s:
            result = chain.verify_deal(s, found)
    console = out()
    if result.valid:
        console.print(
            f"[green]✓ valid[/] {found.ref}: {result.events} events, head hash {result.head_hash}"
        )
        return
    console.print(
        f"[bold red]✗ invalid[/] {found.ref}: first bad seq {result.first_bad_seq} "
        f"({escape(result.reason or 'hash mismatch')}), {result.events} events checked"
    )
    raise typer.Exit(1)


@app.command("export")
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
    from dealroom.services.audit import chain, exports

    with database_or_exit(get_config().database_url, migrate_sqlite=False) as database:
        found = _find_deal(database, deal)
        with session_scope(database, write=False) as s:
            verification = chain.verify_deal(s, found)
            events = chain.deal_events(s, found.id)
            chunks = (
                exports.export_json(found, events, verification)
                if format is ExportFormat.json
                else exports.export_csv(events)
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
                    fail(f"Cannot write {output}: {exc.strerror}")
    if output is not None:
        state = "valid" if verification.valid else "INVALID"
        err().print(
            f"[green]✓[/] wrote {verification.events} events of {found.ref} to "
            f"{escape(str(output))} (chain {state})"
        )
