"""Run every benchmark and write `docs/benchmarks.md`.

    .venv/bin/python bench/run.py              # everything full size (`make bench`): long
    .venv/bin/python bench/run.py --quick      # every script with --quick (`make bench-quick`)
    .venv/bin/python bench/run.py --quick --full queries,audit   # some of them full size
    .venv/bin/python bench/run.py --only engine,queries          # a subset

Each script runs as a subprocess, one after the other (they would skew each other's
figures otherwise), under a Rich progress display. The newer scripts (queries, audit,
plots) end with `BENCH {...}` lines: name, figure, baseline measured in the same run,
ratio, units. For the older ones (engine, timers) the runner reads the figures from
their tables. The API and SSE benchmarks run through `bench/plots.py`, which calls
`bench/api.py` per client count and `bench/realtime.py` with its samples kept, and draws
the PNGs in `docs/`. Every script's whole output goes into the document too.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_URL, loadavg, machine

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
console = Console()
#: From this line to the scripts' outputs, docs/benchmarks.md is written by hand and kept.
KEEP = "<!-- notes: kept across runs -->"
OUTPUTS = "## Output of each script"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@dataclass(frozen=True)
class Bench:
    name: str
    argv: tuple[str, ...]
    what: str
    timeout: float  # seconds, full size

    def command(self, quick: bool) -> list[str]:
        return [sys.executable, *self.argv, *(["--quick"] if quick else [])]


BENCHES: tuple[Bench, ...] = (
    Bench(
        "engine", ("bench/engine.py",), "engine.fire µs per transition vs a dict state machine", 600
    ),
    Bench(
        "queries",
        ("bench/queries.py",),
        "list pages on 100,000 deals / 1,000,000 quote versions vs the same rows by primary key",
        1800,
    ),
    Bench(
        "audit",
        ("bench/audit.py",),
        "audit export and verify over 1,000,000 events vs COPY and bare sha256",
        1800,
    ),
    Bench(
        "api",
        ("bench/plots.py", "throughput"),
        "API transitions/s against concurrency vs pgbench doing the same writes",
        3600,
    ),
    Bench(
        "realtime",
        ("bench/plots.py", "sse"),
        "SSE commit→delivery latency across two API processes",
        1800,
    ),
    Bench("timers", ("bench/timers.py",), "durable timers drained per second vs raw SQL", 7200),
)
# The short ones first: a run cut short still documents most of them.
BENCHES = tuple(
    sorted(
        BENCHES,
        key=lambda b: ("engine", "realtime", "api", "timers", "queries", "audit").index(b.name),
    )
)


@dataclass
class Outcome:
    bench: Bench
    command: str
    code: int
    seconds: float
    output: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


# --- reading the older scripts' tables -----------------------------------------------------


def engine_figures(out: str) -> list[dict[str, Any]]:
    """bench/engine.py's rows: process, fires/walk, fires, median µs, p99 µs, fires/s,
    dict ns, × dict."""
    figures: list[dict[str, Any]] = []
    for line in out.splitlines():
        cells = [c.strip().replace(",", "") for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) != 8 or not re.match(r"^[a-z][a-z-]*$", cells[0]):
            continue
        try:
            median_us, dict_ns, ratio = float(cells[3]), float(cells[6]), float(cells[7])
        except ValueError:
            continue
        figures.append(
            {
                "name": f"engine: {cells[0]} median fire",
                "figure": median_us,
                "baseline": dict_ns / 1000,
                "ratio": ratio,
                "units": "µs per fire",
                "baseline_is": "dict state machine",
            }
        )
    return figures


def timers_figures(out: str) -> list[dict[str, Any]]:
    figures = []
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 2 and re.search(r"worker|raw SQL", cells[0]):
            figures.append({"name": f"timers: {cells[0]}", "raw": " | ".join(cells[1:])})
    return figures


def collect(bench: Bench, out: str) -> list[dict[str, Any]]:
    figures = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("BENCH {")]
    if bench.name == "engine":
        figures += engine_figures(out)
    elif bench.name == "timers":
        figures += timers_figures(out)
    return figures


# --- running ---------------------------------------------------------------------------------


def run(bench: Bench, quick: bool, progress: Progress, task: Any) -> Outcome:
    cmd = bench.command(quick)
    shown = " ".join([".venv/bin/python", *cmd[1:]])
    before = loadavg()
    started = time.perf_counter()
    lines: list[str] = []
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "150", "TERM": "dumb"},
    )
    assert proc.stdout is not None
    deadline = started + (bench.timeout / (4 if quick else 1))
    for line in proc.stdout:
        line = ANSI.sub("", line.rstrip("\n"))
        lines.append(line)
        if line.strip():
            progress.update(task, description=f"[bold]{bench.name}[/] {line.strip()[:70]}")
        if time.perf_counter() > deadline:
            proc.kill()
            lines.append(
                f"[bench/run.py: stopped after {bench.timeout / (4 if quick else 1):.0f} s]"
            )
            break
    code = proc.wait()
    out = "\n".join(lines)
    return Outcome(
        bench,
        shown,
        code,
        time.perf_counter() - started,
        out,
        collect(bench, out),
        before,
        loadavg(),
    )


# --- the document ----------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def ratio_text(f: dict[str, Any]) -> str:
    r = float(f["ratio"])
    if r != r:
        return "–"
    return f"{r:.2f}× the baseline's " + ("time" if not f.get("higher_is_better") else "rate⁻¹")


def write_doc(
    doc: Path,
    outcomes: list[Outcome],
    argv: list[str],
    info: dict[str, str],
    started: datetime,
    load_start: str,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run.py`; rerun with `make bench` (full size) or `make bench-quick`.",
        "Every figure sits next to a baseline measured in the same run on the same machine, so",
        "a slower or busier machine shows in both. **ratio** is always *how many times slower",
        "than the baseline* (time ÷ baseline time, or baseline rate ÷ rate): 1.00 is as fast",
        "as the baseline, below 1 is faster.",
        "",
        f"- **Date**: {started:%Y-%m-%d %H:%M} UTC",
        f"- **Command**: `.venv/bin/python bench/run.py {' '.join(argv)}`".rstrip() + "",
        f"- **Machine**: {info['cores']} cores ({info['cpu']}), {info['memory']} memory, "
        f"{info['os']}, Python {info['python']}, {info['postgresql']}",
        f"- **Load average** (1, 5, 15 min) at the start: {load_start}; at the end: {loadavg()}. "
        "Other sessions share this machine, so the absolute figures move; the ratios less so.",
        "",
        "## Summary",
        "",
        "| benchmark | figure | baseline (same run) | ratio | units |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        for f in o.figures:
            if "figure" in f:
                lines.append(
                    f"| {f['name']} | {fmt(f['figure'])} | {fmt(f['baseline'])}"
                    f"{' (' + f['baseline_is'] + ')' if f.get('baseline_is') else ''}"
                    f" | {fmt(f['ratio'])} | {f['units']} |"
                )
    rows = [(o, f) for o in outcomes for f in o.figures if "raw" in f]
    if rows:
        lines += ["", "Read from the tables of the older scripts (their columns, as printed):", ""]
        for _o, f in rows:
            lines.append(f"- {f['name']}: {f['raw']}")
    lines += [
        "",
        "## Runs",
        "",
        "| benchmark | command | exit | time | load before → after |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.bench.name} | `{o.command}` | {o.code} | {o.seconds:,.0f} s | "
            f"{o.load_before} → {o.load_after} |"
        )
    for png, title in (
        ("bench-throughput.png", "Throughput against concurrency"),
        ("bench-sse-latency.png", "SSE latency distribution"),
    ):
        if (ROOT / "docs" / png).exists():
            lines += ["", f"## {title}", "", f"![{title}]({png})"]
    if doc.exists() and KEEP in (previous := doc.read_text()):
        notes = previous[previous.index(KEEP) :].split(OUTPUTS)[0].rstrip()
        lines += ["", notes]
    else:
        lines += ["", KEEP]
    lines += ["", OUTPUTS, ""]
    for o in outcomes:
        lines += [f"### {o.bench.name}: {o.bench.what}", "", f"`{o.command}`", "", "```"]
        lines += [ln for ln in o.output.splitlines() if not ln.startswith("BENCH {")]
        lines += ["```", ""]
    doc.write_text("\n".join(lines).rstrip() + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every script with --quick")
    parser.add_argument("--full", default="", help="with --quick: these run full size anyway")
    parser.add_argument(
        "--only", default="", help="comma-separated: " + ",".join(b.name for b in BENCHES)
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="where to write (docs/benchmarks.md)")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    full = {n for n in args.full.split(",") if n}
    chosen = [b for b in BENCHES if not only or b.name in only]
    started, load_start = datetime.now(UTC), loadavg()
    info = machine(DEFAULT_URL)
    outcomes: list[Outcome] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        overall = progress.add_task("[bold]benchmarks", total=len(chosen))
        for bench in chosen:
            task = progress.add_task(f"[bold]{bench.name}[/] starting", total=None)
            outcome = run(bench, args.quick and bench.name not in full, progress, task)
            outcomes.append(outcome)
            progress.remove_task(task)
            mark = "[green]✓" if outcome.code == 0 else f"[red]✗ exit {outcome.code}"
            progress.console.print(
                f"{mark}[/] {bench.name} in {outcome.seconds:,.0f} s "
                f"({len(outcome.figures)} figures)"
            )
            progress.advance(overall)
            write_doc(args.doc, outcomes, sys.argv[1:], info, started, load_start)

    table = Table(title="Benchmarks", title_justify="left")
    for col in ("benchmark", "figure", "baseline", "ratio", "units"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for o in outcomes:
        for f in o.figures:
            if "figure" in f:
                table.add_row(
                    f["name"], fmt(f["figure"]), fmt(f["baseline"]), fmt(f["ratio"]), f["units"]
                )
            else:
                table.add_row(f["name"], f["raw"], "", "", "")
    console.print(table)
    console.print(f"wrote {args.doc}")
    return 0 if all(o.code == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
