"""`dealroom process …`: list, show, check, draw and import process definitions.

Built-in processes ship with the package; imported ones live as TOML files in a folder,
`DEALROOM_PROCESS_DIR` (default `./dealroom-data/processes/`). `resolve_process(name)` looks
a name up in that order, so a built-in name can never be shadowed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dealroom.domain.errors import ProcessError, ProcessProblem
from dealroom.domain.loader import NAME_RE, from_mapping, load_text
from dealroom.domain.model import Process, Transition
from dealroom.domain.settings import Settings
from dealroom.domain.timeexpr import Period
from dealroom.graph import mermaid
from dealroom.processes import BUILTIN, builtin

PROCESS_DIR_ENV = "DEALROOM_PROCESS_DIR"
DEFAULT_PROCESS_DIR = Path("dealroom-data/processes")
FILE_SUFFIXES = (".toml", ".edn")


class UnknownProcessError(LookupError):
    """No built-in or imported process has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"There is no process named '{self.name}'. Known processes: {known}."


# --- finding processes ---------------------------------------------------------------------


def process_dir() -> Path:
    """The folder of imported processes, read from the environment at each call."""
    return Path(os.environ.get(PROCESS_DIR_ENV) or DEFAULT_PROCESS_DIR)


def imported_names() -> list[str]:
    folder = process_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml") if p.is_file())


def _builtin(name: str) -> Process:
    try:
        return builtin(name)
    except (FileNotFoundError, OSError) as exc:
        where = f"dealroom/processes/{name}.toml"
        raise ProcessError(where, [ProcessProblem("file", "missing from the package")]) from exc


def resolve_process(name: str) -> Process:
    """A process by name: the built-in one first, then one imported into the folder."""
    if name in BUILTIN:
        return _builtin(name)
    path = process_dir() / f"{name}.toml"
    if NAME_RE.match(name) and path.is_file():
        process = load_process_file(path)
        if process.name != name:
            problem = f"declares the name '{process.name}' but is stored as {path.name}"
            raise ProcessError(str(path), [ProcessProblem("process.name", problem)])
        return process
    raise UnknownProcessError(name, [*BUILTIN, *(n for n in imported_names() if n not in BUILTIN)])


def source_kind(name: str) -> str:
    return "built-in" if name in BUILTIN else "imported"


def load_process_file(path: Path, *, name: str | None = None) -> Process:
    """Load a `.toml` process in dealroom's format or a Sharetribe `.edn`, checked.

    With `name`, the process is renamed (an import under a new name).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProcessError(str(path), [ProcessProblem("file", exc.strerror or str(exc))]) from exc
    if path.suffix.lower() == ".edn":
        from dealroom.sharetribe import import_edn

        try:
            return import_edn(text, name=name, source=str(path))
        except ProcessError:
            raise
        except ValueError as exc:  # anything the converter did not put into words
            raise ProcessError(str(path), [ProcessProblem("edn", str(exc))]) from exc
    if name is None:
        return load_text(text, source=str(path))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProcessError(str(path), [ProcessProblem("syntax", str(exc))]) from exc
    if isinstance(raw.get("process"), dict):
        raw["process"]["name"] = name
    return from_mapping(raw, source=str(path), text=text)


def load_target(target: str) -> Process:
    """`NAME|FILE`: a file when it looks like one (a known suffix or an existing path)."""
    path = Path(target)
    if target.lower().endswith(FILE_SUFFIXES) or (
        target not in BUILTIN and (os.sep in target or "/" in target or path.is_file())
    ):
        if not path.is_file():
            raise ProcessError(target, [ProcessProblem("file", "no such file")])
        return load_process_file(path)
    return resolve_process(target)


# --- importing -------------------------------------------------------------------------------


def _renamed_text(text: str, name: str) -> str | None:
    """A dealroom file's own text (comments kept) with its `[process]` name set to `name`."""
    lines = text.splitlines(keepends=True)
    table = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped
        elif table == "[process]" and re.match(r"^name\s*=", stripped):
            lines[i] = f"name = {json.dumps(name)}\n"
            break
    renamed = "".join(lines)
    try:
        ok = load_text(renamed).name == name
    except ProcessError:
        ok = False
    return renamed if ok else None


def import_process(source: Path, name: str, *, replace: bool = False) -> tuple[Process, Path]:
    """Convert and check `source`, then store it as `<process dir>/<name>.toml`.

    A dealroom file is stored as written (comments kept), renamed; a Sharetribe file is
    converted to our TOML. What is stored must load again, checks included.
    """
    if not NAME_RE.match(name):
        raise ValueError(f"'{name}' is not a process name: use lower-case words joined by '-'.")
    if name in BUILTIN:
        raise ValueError(f"'{name}' is a built-in process; import it under another name.")
    target = process_dir() / f"{name}.toml"
    if target.exists() and not replace:
        raise FileExistsError(
            f"An imported process '{name}' already exists ({target}); "
            "pass --replace to overwrite it."
        )
    load_process_file(source, name=name)  # every problem, reported against the source file
    from dealroom.sharetribe import parse_edn, to_toml

    header = (
        f"Imported by `dealroom process import` from {source.name}.\n"
        "The format is described in docs/processes.md."
    )
    text = source.read_text(encoding="utf-8")
    if source.suffix.lower() == ".edn":
        text = to_toml(parse_edn(text, str(source), name=name), header=header)
    else:
        renamed = _renamed_text(text, name)
        if renamed is None:
            raw = tomllib.loads(text)
            raw["process"]["name"] = name
            renamed = to_toml(raw, header=header)
        text = renamed
    stored = load_text(text, source=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return stored, target


# --- the commands ---------------------------------------------------------------------------

app = typer.Typer(
    help="Inspect, verify, draw and import process definitions.", no_args_is_help=True
)


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, problems: list[str] | None = None) -> NoReturn:
    console = _err()
    console.print(f"[bold red]✗[/] {escape(message)}")
    for p in problems or []:
        console.print(f"  [red]•[/] {escape(p)}")
    raise typer.Exit(1)


def _fail_process(exc: ProcessError) -> NoReturn:
    _fail(f"{exc.source}: {len(exc.problems)} problem(s)", [str(p) for p in exc.problems])


def _load_or_fail(target: str) -> Process:
    try:
        return load_target(target)
    except ProcessError as exc:
        _fail_process(exc)
    except UnknownProcessError as exc:
        _fail(str(exc))
    except ImportError as exc:
        _fail(f"Sharetribe import is not available: {exc}")


def _counts(process: Process) -> str:
    timers = sum(len(t.timers) for t in process.transitions.values())
    return (
        f"{len(process.states)} states ({len(process.final_states)} final), "
        f"{len(process.transitions)} transitions ({len(process.initial_transitions)} initial), "
        f"{timers} timers, {len(process.notifications)} notifications"
    )


@app.command("list")
def list_processes() -> None:
    """List the built-in and imported processes."""
    table = Table(title="Processes", title_justify="left")
    for col in ("name", "version", "title", "states", "transitions", "source"):
        table.add_column(
            col, justify="right" if col in ("version", "states", "transitions") else "left"
        )
    names = [*BUILTIN, *(n for n in imported_names() if n not in BUILTIN)]
    for name in names:
        kind = source_kind(name)
        try:
            p = resolve_process(name)
        except (ProcessError, UnknownProcessError) as exc:
            gone = isinstance(exc, ProcessError) and any(p.where == "file" for p in exc.problems)
            reason = "missing" if gone else "does not load"
            table.add_row(escape(name), "", f"[red]{reason}[/]", "", "", kind)
            continue
        table.add_row(
            escape(p.name),
            str(p.version),
            escape(p.title),
            str(len(p.states)),
            str(len(p.transitions)),
            kind if kind == "built-in" else f"imported ({escape(p.source)})",
        )
    _out().print(table)


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
) -> None:
    """Show a process: states, transitions, timers, settings and notifications."""
    p = _load_or_fail(name)
    console = _out()
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
        _fail(f"{file}: no such file")
    try:
        p = load_process_file(file)
    except ProcessError as exc:
        _fail_process(exc)
    except ImportError as exc:
        _fail(f"Sharetribe import is not available: {exc}")
    _out().print(f"[bold green]OK[/] {escape(p.name)} v{p.version}: {_counts(p)}", soft_wrap=True)


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
        _out().print(f"Wrote {escape(str(output))}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A .toml (dealroom) or .edn (Sharetribe) file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The name to store it under.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an imported process of that name.")
    ] = False,
) -> None:
    """Convert and check a process file, then store it among the imported processes."""
    if not file.is_file():
        _fail(f"{file}: no such file")
    try:
        p, path = import_process(file, name, replace=replace)
    except ProcessError as exc:
        _fail_process(exc)
    except (ValueError, FileExistsError) as exc:
        _fail(str(exc))
    except ImportError as exc:
        _fail(f"Sharetribe import is not available: {exc}")
    _out().print(
        Group(
            f"[bold green]Imported[/] {escape(p.name)} v{p.version}: {_counts(p)}",
            f"[dim]stored as {escape(str(path))}[/]",
        )
    )
