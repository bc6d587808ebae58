"""The benchmark plots, PNG in `docs/`.

    .venv/bin/python bench/plots.py throughput [--clients 1,2,4,8,16] [--quick]
    .venv/bin/python bench/plots.py sse [--quick]

`throughput` runs `bench/api.py --clients N` once per client count (as a subprocess, with
`--quick` 5 s per phase) and plots the API's transitions/s and pgbench's raw SQL doing the
same database work against the number of concurrent clients:
`docs/bench-throughput.png`.

`sse` runs `bench/realtime.py` in this process with its `report` wrapped, so that every
measured commit→delivery sample (not only the percentiles it prints) is kept, and plots
their distribution: `docs/bench-sse-latency.png`. `bench/realtime.py` itself is unchanged
and still prints its own table.

Both also print `BENCH {...}` lines for `bench/run.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, loadavg, pct

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: bench/api.py's last line: "API / raw SQL = 1,234 / 2,345 = 0.53; …".
RATES = re.compile(r"API / raw SQL = ([\d,.]+) / ([\d,.]+)")


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def throughput(clients: list[int], quick: bool) -> int:
    points: list[tuple[int, float, float]] = []
    for n in clients:
        cmd = [sys.executable, str(ROOT / "bench" / "api.py"), "--clients", str(n)]
        if quick:
            cmd.append("--quick")
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        for _attempt in range(60):  # bench/api.py refuses to run beside another run of it
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            out = proc.stdout + proc.stderr
            if "another bench/api.py run" not in out:
                break
            time.sleep(10)
        found = RATES.findall(out)
        if proc.returncode != 0 or not found:
            print(out[-3000:])
            print(f"bench/api.py --clients {n} failed (exit {proc.returncode})")
            continue
        points.append((n, _number(found[-1][0]), _number(found[-1][1])))
        print(
            f"{n:>3} clients: API {points[-1][1]:,.0f}/s, raw SQL {points[-1][2]:,.0f}/s"
            f"  (load {loadavg()})",
            flush=True,
        )
    if not points:
        return 1
    draw_throughput(points, quick)
    print("DATA " + json.dumps({"throughput": points}))
    for n, api_rate, raw_rate in points:
        emit(
            f"api: transitions/s at {n} clients",
            api_rate,
            raw_rate,
            "transitions/s",
            higher_is_better=True,
            clients=n,
        )
    return 0


def draw_throughput(points: list[tuple[int, float, float]], quick: bool) -> None:
    xs = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.plot(xs, [p[1] for p in points], "o-", label="API over HTTP (dealroom serve, 2 workers)")
    ax.plot(xs, [p[2] for p in points], "s--", label="raw SQL, same writes (pgbench)")
    for x, api_rate, raw_rate in points:
        ax.annotate(
            f"{api_rate:,.0f}",
            (x, api_rate),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
        ax.annotate(
            f"{raw_rate:,.0f}",
            (x, raw_rate),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("market deal transitions per second")
    ax.set_ylim(bottom=0)
    ax.set_title(
        "Throughput against concurrency, PostgreSQL" + (" (bench/api.py --quick)" if quick else "")
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, f"load average at the end {loadavg()}", fontsize=7, alpha=0.6)
    fig.tight_layout()
    png = DOCS / "bench-throughput.png"
    fig.savefig(png)
    print(f"wrote {png.relative_to(ROOT)}")


def sse(quick: bool, extra: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("bench_realtime", ROOT / "bench" / "realtime.py")
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load bench/realtime.py")
    realtime: Any = importlib.util.module_from_spec(spec)
    sys.modules["bench_realtime"] = realtime
    spec.loader.exec_module(realtime)
    captured: list[Any] = []
    original = realtime.report

    def report(results: list[Any], *args: Any) -> None:
        captured.extend(results)
        original(results, *args)

    realtime.report = report
    sys.argv = ["bench/realtime.py", *(["--quick"] if quick else []), *extra]
    code = 0
    try:
        realtime.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    if not captured:
        print("bench/realtime.py reported nothing")
        return code or 1
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    top = max(pct(r.from_commit, 99.5) for r in captured if r.from_commit)
    bins = [top * i / 60 for i in range(61)]
    for r in captured:
        ax.hist(
            [min(v, top) for v in r.from_commit],
            bins=bins,
            alpha=0.55,
            label=f"{r.name}: n={len(r.from_commit):,}, p50 {pct(r.from_commit, 50):.1f} ms,"
            f" p99 {pct(r.from_commit, 99):.1f} ms",
        )
    sup = realtime.SUPABASE
    ax.axvline(sup["p50"], color="grey", ls=":", label=f"Supabase Realtime p50 {sup['p50']:.0f} ms")
    if sup["p99"] <= top:
        ax.axvline(
            sup["p99"], color="grey", ls="--", label=f"Supabase Realtime p99 {sup['p99']:.0f} ms"
        )
    ax.set_xlabel("commit → delivery on the subscriber (ms; the last bin holds everything above)")
    ax.set_ylabel("deliveries")
    subs = (
        "100" if quick else next((a.split("=")[1] for a in extra if "--subscribers=" in a), "1000")
    )
    ax.set_title(f"SSE latency, {subs} subscribers on 2 API processes (PostgreSQL NOTIFY)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, f"load average at the end {loadavg()}", fontsize=7, alpha=0.6)
    fig.tight_layout()
    out = DOCS / "bench-sse-latency.png"
    fig.savefig(out)
    print(f"wrote {out.relative_to(ROOT)}")
    for r in captured:
        if r.from_commit:
            for q in (50, 99):
                emit(
                    f"realtime: {r.name} commit→delivery p{q}",
                    pct(r.from_commit, q),
                    sup[f"p{q}"],
                    "ms",
                    higher_is_better=False,
                    samples=len(r.from_commit),
                    baseline_is="Supabase Realtime, published figure (not measured here)",
                )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("plot", choices=("throughput", "sse"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", default="1,2,4,8,16", help="client counts (throughput)")
    parser.add_argument("--data", help="throughput: redraw from a saved output's DATA line")
    args, extra = parser.parse_known_args(argv)
    if args.plot == "throughput" and args.data:
        data = json.loads(Path(args.data).read_text().split("DATA ", 1)[1].splitlines()[0])
        draw_throughput([(int(n), a, r) for n, a, r in data["throughput"]], args.quick)
        return 0
    if args.plot == "throughput":
        return throughput([int(c) for c in args.clients.split(",")], args.quick)
    return sse(args.quick, extra)


if __name__ == "__main__":
    sys.exit(main())
