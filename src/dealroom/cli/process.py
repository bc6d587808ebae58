"""`dealroom process …`: list, show, check, draw and import process definitions.

Built-in processes ship with the package; imported ones are stored in the database
(`DEALROOM_DATABASE_URL`, table `processes`) by the importer the API uses
(`services.processes`), so a running server uses an import at once. Each import of a name
stores its next version; deals keep the version they started with.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dealroom.cli.common import DatabaseUnusable, database_if_any, fail, open_database, out
from dealroom.config import from_env
from dealroom.domain.errors import Duplicate, ProcessError, ProcessProblem
from dealroom.domain.loader import NAME_RE
from dealroom.domain.model import Process, Transition
from dealroom.domain.settings import Settings
from dealroom.domain.timeexpr import Period
from dealroom.processes import BUILTIN
from dealroom.processes.graph import mermaid
from dealroom.services import processes
from dealroom.services.processes import UnknownProcessError
from dealroom.services.uow import session_scope

FILE_SUFFIXES = (".toml", ".edn")


# --- finding processes ---------------------------------------------------------------------


@contextmanager
def _imported() -> Iterator[Session | None]:
    """A read-only session on the database of `DEALROOM_DATABASE_URL` (read now, not the
    cached configuration), or None when its SQLite file does not exist yet: nothing was
    imported, and looking must not create it."""
    with database_if_any(from_env().database_url) as database:
        if database is None:
            yield None
            return
        with session_scope(database, write=False) as session:
            yield session


def resolve_process(name: str, version: int | None = None) -> Process:
    """A process by name: the built-in one first, then the one imported into the database
    (its latest version, or `version`)."""
    if name in BUILTIN:  # found without opening, let alone creating, a database
        return processes.find_process(None, name, version)
    with _imported() as session:
        return processes.find_process(session, name, version)


def source_kind(name: str) -> str:
    return "built-in" if name in BUILTIN else "imported"


def is_file_target(target: str) -> bool:
    """`NAME|FILE` names a file when it looks like one (a known suffix or an existing path)."""
    return target.lower().endswith(FILE_SUFFIXES) or (
        target not in BUILTIN and (os.sep in target or "/" in target or Path(target).is_file())
    )


def load_target(target: str, version: int | None = None) -> Process:
    """A process file, or a process by name (`version` applies to names only)."""
    if is_file_target(target):
        path = Path(target)
        if not path.is_file():
            raise ProcessError(target, [ProcessProblem("file", "no such file")])
        return processes.load_process_file(path)
    return resolve_process(target, version)


def import_file(source: Path, name: str) -> Process:
    """Check `source` as process `name`, every problem reported against the file and before
    the database is touched, then store it as the next version of `name`. On SQLite the
    database is created and migrated if need be."""
    if not NAME_RE.match(name):
        raise ValueError(f"'{name}' is not a process name: use lower-case words joined by '-'.")
    if name in BUILTIN:
        raise ValueError(f"'{name}' is a built-in process; import it under another name.")
    processes.load_process_file(source, name=name)
    header = (
        f"Imported by `dealroom process import` from {source.name}.\n"
        "The format is described in docs/processes.md."
    )
    with open_database(from_env().database_url) as database:
        return processes.import_into(
            database,
            source.read_text(encoding="utf-8"),
            source_format=processes.format_of(source),
            now=datetime.now(UTC),
            name=name,
            source=str(source),
            header=header,
        )


# --- the commands ---------------------------------------------------------------------------

app = typer.Typer(
    help="Inspect, verify, draw and import process definitions.", no_args_is_help=True
)


def _fail_process(exc: ProcessError) -> NoReturn:
    fail(f"{exc.source}: {len(exc.problems)} problem(s)", [str(p) for p in exc.problems])


def _load_or_fail(target: str, version: int | None = None) -> Process:
    try:
        return load_target(target, version)
    except ProcessError as exc:
        _fail_process(exc)
    except (UnknownProcessError, DatabaseUnusable) as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"Sharetribe import is not available: {exc}")


def _counts(process: Process) -> str:
    timers = sum(len(t.timers) for t in process.transitions.values())
    return (
        f"{len(process.states)} states ({len(process.final_states)} final), "
        f"{len(process.transitions)} transitions ({len(process.initial_transitions)} initial), "
        f"{timers} timers, {len(process.notifications)} notifications"
    )


@app.command("list")
def list_processes() -> None:
    """List the built-in processes and those imported into the database (latest version)."""
    try:
        with _imported() as session:
            listed = processes.catalog(session)
    except DatabaseUnusable as exc:
        fail(str(exc))
    table = Table(title="Processes", title_justify="left")
    for col in ("name", "version", "title", "states", "transitions", "source"):
        table.add_column(
            col, justify="right" if col in ("version", "states", "transitions") else "left"
        )
    for name, p in listed:
        kind = source_kind(name)
        if isinstance(p, ProcessError):
            gone = any(problem.where == "file" for problem in p.problems)
            reason = "missing" if gone else "does not load"
            table.add_row(escape(name), "", f"[red]{reason}[/]", "", "", kind)
            continue
        table.add_row(
            escape(p.name),
            str(p.version),
            escape(p.title),
            str(len(p.states)),
            str(len(p.transitions)),
            kind,
        )
    out().print(table)


#: The rule each setting implements, as the reference documents name it.
SETTING_RULES = {
    "counter_rules": "CTR-001…006, NEG-V01…V06, NEG-L01/L02/L05",
    "max_rounds": "NEG-L01, CTR-005",
    "max_versions": "NEG-L02",
    "min_price_change_pct": "CTR-002, NEG-L05",
    "max_price_change_pct": "NEG-V01",
    "counter_message_required": "NEG-V04",
    "transition_quota": "QUOTA (Sharetribe's 100 transitions)",
    "first_quote_window": "NEG-T01",
    "counter_response_window": "NEG-T02, CTR-003",
    "max_counter_response_window": "NEG-T05",
    "quote_validity": "NEG-T03",
    "inactivity_timeout": "NEG-T04",
    "response_window": "OFR-004",
    "response_sla": "market response-time SLA",
    "quote_expiring_notice": "quote-expiring reminder",
    "counter_expiring_notice": "counter-expiring reminder",
    "offer_rules": "OFR-001…008",
    "offer_min_amount": "OFR-001",
    "offer_max_amount": "OFR-001",
    "offer_message_min": "OFR-002",
    "offer_message_max": "OFR-002",
    "offer_required_fields": "OFR-003",
    "kyc_threshold": "OFR-006",
    "min_offer_fraction": "OFR-007",
    "paid_plan_threshold": "OFR-008",
    "offers_per_day": "anti-spam (service layer)",
    "one_open_offer_per_listing": "anti-spam (service layer)",
    "min_account_age": "OFR-005",
}


def _setting_text(value: Any) -> str:
    if value is None:
        return "— (off)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, Period):
        text = value.text()
        hours = value.delta.total_seconds() / 3600
        if not value.months and 1 <= hours < 96 and hours == int(hours):
            text += f" ({int(hours)} h)"
        return text
    return str(value)


def _to_text(t: Transition) -> str:
    if not t.dst_by_role:
        return t.dst
    parts = [f"{role}: {dst}" for role, dst in t.dst_by_role.items()]
    if t.dst not in t.dst_by_role.values():
        parts.append(f"others: {t.dst}")
    return "\n".join(parts)


def _actor_text(t: Transition) -> str:
    text = ", ".join(sorted(t.actors))
    if t.name.startswith("operator-") and "operator" not in t.actors:
        text += ", operator (operator-*)"
    if t.actor_rule:
        text += f"\n[dim]refused: {escape(t.actor_rule)}[/]"
    return text


def _timers_text(t: Transition) -> str:
    return "\n".join(f"⏱ {escape(r.state)} [dim]{escape(r.rule or '')}[/]" for r in t.timers)


def _timers_table(p: Process) -> Table | None:
    rows = [(t, r) for t in p.transitions.values() for r in t.timers]
    if not rows:
        return None
    table = Table(title="Timers", title_justify="left")
    for col in ("transition", "while in", "fires at", "rule", "event", "only when"):
        table.add_column(col, overflow="fold")
    for t, r in rows:
        when = []
        if r.pending_by:
            when.append(f"the pending quote is the {r.pending_by}'s")
        if r.after:
            when.append("entered by " + ", ".join(sorted(r.after)))
        table.add_row(
            escape(t.name),
            escape(r.state),
            f"[cyan]{escape(r.at.text())}[/]",
            escape(r.rule or ""),
            escape(r.event or t.event_type("system")),
            escape("; ".join(when)),
        )
    return table


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A process name, or a .toml/.edn file.")],
    version: Annotated[
        int | None,
        typer.Option(
            "--version", min=1, help="A stored version of an imported process (default: latest)."
        ),
    ] = None,
) -> None:
    """Show a process: states, transitions, timers, settings and notifications."""
    if version is not None and is_file_target(name):
        fail("--version applies to a process name, not to a file.")
    p = _load_or_fail(name, version)
    console = out()
    intro = Text.assemble(
        (f"{p.name} v{p.version}", "bold"),
        f" — {p.title}" if p.title else "",
        f"\n{p.description}" if p.description else "",
        (f"\n{source_kind(p.name) if p.name == name else 'file'}: {p.source}", "dim"),
    )
    console.print(Panel(intro, expand=False))

    states = Table(title="States", title_justify="left")
    states.add_column("state")
    states.add_column("description")
    states.add_column("final", justify="center")
    initial = {t.destination(r) for t in p.initial_transitions for r in ("buyer", "seller")}
    initial |= {t.dst for t in p.initial_transitions}
    for s in p.states:
        label = escape(s) + (" [dim](start)[/]" if s in initial else "")
        states.add_row(label, escape(p.state_titles.get(s, "")), "✓" if s in p.final_states else "")
    console.print(states)

    transitions = Table(title="Transitions", title_justify="left", show_lines=True)
    for col in ("transition", "from", "to", "actor", "actions", "timers"):
        transitions.add_column(col, overflow="fold")
    for t in p.transitions.values():
        label = f"[bold]{escape(t.name)}[/]"
        if t.title:
            label += f"\n{escape(t.title)}"
        events = ", ".join(f"{k}: {v}" if k != "*" else v for k, v in t.events.items())
        label += f"\n[dim]{escape(events or t.event_type('*'))}[/]"
        if t.sale_modes:
            label += f"\n[dim]sale modes: {escape(', '.join(sorted(t.sale_modes)))}[/]"
        if t.privileged:
            label += "\n[dim]privileged[/]"
        src = "\n".join(s for s in p.states if s in t.src) or "[dim](initial)[/]"
        transitions.add_row(
            label,
            src,
            escape(_to_text(t)),
            _actor_text(t),
            escape("\n".join(t.actions)),
            _timers_text(t),
        )
    console.print(transitions)
    timers = _timers_table(p)
    if timers is not None:
        console.print(timers)

    settings = Table(title="Settings", title_justify="left")
    settings.add_column("setting")
    settings.add_column("value")
    settings.add_column("rule")
    settings.add_column("", style="dim")
    defaults = Settings()
    for f in fields(Settings):
        value = getattr(p.settings, f.name)
        changed = value != getattr(defaults, f.name)
        settings.add_row(
            f"[bold]{f.name}[/]" if changed else f.name,
            escape(_setting_text(value)),
            escape(SETTING_RULES.get(f.name, "")),
            "set by the process" if changed else "default",
        )
    console.print(settings)

    if p.notifications:
        notes = Table(title="Notifications", title_justify="left")
        for col in ("notification", "when", "to", "template"):
            notes.add_column(col)
        for n in p.notifications:
            when = []
            if n.on:
                when.append("on " + ", ".join(n.on))
            if n.state:
                when.append(f"in {n.state}")
            if n.at is not None:
                when.append(f"at {n.at.text()}")
            if n.before:
                when.append(f"{n.by} before {n.before}")
            notes.add_row(
                escape(n.name), escape("\n".join(when)), escape(", ".join(n.to)), escape(n.template)
            )
        console.print(notes)


@app.command("check")
def check(
    file: Annotated[
        Path, typer.Argument(help="A process file: .toml (dealroom) or .edn (Sharetribe).")
    ],
) -> None:
    """Load a process file and run every check; exit 1 listing each problem."""
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        p = processes.load_process_file(file)
    except ProcessError as exc:
        _fail_process(exc)
    except ImportError as exc:
        fail(f"Sharetribe import is not available: {exc}")
    out().print(f"[bold green]OK[/] {escape(p.name)} v{p.version}: {_counts(p)}", soft_wrap=True)


@app.command("graph")
def graph(
    target: Annotated[str, typer.Argument(metavar="NAME|FILE", help="A process name or file.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead.")
    ] = None,
) -> None:
    """Print the process as a Mermaid stateDiagram-v2."""
    text = mermaid(_load_or_fail(target))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        out().print(f"Wrote {escape(str(output))}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A .toml (dealroom) or .edn (Sharetribe) file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The name to store it under.")],
) -> None:
    """Convert and check a process file, then store it in the database.

    It becomes the next version of NAME, and running servers use it at once.
    An import replaces nothing: deals keep the version they started with,
    new deals get the latest. On SQLite the database is created and migrated
    if need be; PostgreSQL must be at the head revision (dealroom db upgrade).
    """
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        p = import_file(file, name)
    except ProcessError as exc:
        _fail_process(exc)
    except (ValueError, Duplicate, DatabaseUnusable) as exc:
        fail(exc.detail if isinstance(exc, Duplicate) else str(exc))
    except ImportError as exc:
        fail(f"Sharetribe import is not available: {exc}")
    url = make_url(from_env().database_url).render_as_string(hide_password=True)
    out().print(
        Group(
            f"[bold green]Imported[/] {escape(p.name)} v{p.version}: {_counts(p)}",
            f"[dim]stored in {escape(url)}[/]",
        ),
        soft_wrap=True,
    )
