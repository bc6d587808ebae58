"""How long one `engine.fire` takes, per built-in process.

Each process gets a representative walk — a request or offer, counters both ways, an
acceptance and what follows it — fired through the pure engine many times over, each
walk from a fresh deal. Every `fire` is timed on its own with `time.perf_counter_ns`,
after a warm-up; the table shows the median and p99 per fire and the fires per second.

The same run also times a plain dict-based state machine doing the same transitions (a
`(state, transition, role) -> state` lookup), so the ratio between the two stays
comparable on a noisy or slower machine.

    .venv/bin/python bench/engine.py            # about 10 s
    .venv/bin/python bench/engine.py --detail   # and the cost of each step of each walk
    .venv/bin/python bench/engine.py --quick    # a couple of seconds, for CI
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from dealroom.domain.engine import fire
from dealroom.domain.errors import DealroomError, ProcessError
from dealroom.domain.model import Process
from dealroom.domain.state import Actor, DealState, Listing, Payload
from dealroom.processes import BUILTIN, builtin

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
ACTORS = {
    "buyer": Actor(role="buyer", user_id="b", kyc_verified=True, plan="paid"),
    "seller": Actor(role="seller", user_id="s", kyc_verified=True, plan="paid"),
    "operator": Actor(role="operator", user_id="o"),
    "system": Actor(role="system"),
}
OFFER_MESSAGE = (
    "We would like to buy at this price; financing is arranged and we can close in 30 days."
)
OFFER_DATA = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}


@dataclass(frozen=True)
class Step:
    transition: str
    role: str
    payload: Payload = field(default_factory=Payload)


@dataclass(frozen=True)
class Scenario:
    listing: Listing
    steps: tuple[Step, ...]


def _terms(price: str, **more: object) -> dict[str, object]:
    return {"unit_price": price, **more}


SCENARIOS: dict[str, Scenario] = {
    # The rfq reference example: request, quote, two counters, accept (creates the order).
    "rfq": Scenario(
        Listing(currency="SAR", unit_price=Decimal("50.00"), quantity=1000),
        (
            Step("request-quote", "buyer", Payload(terms={"quantity": 1000}, message="Q2")),
            Step("send-quote", "seller", Payload(terms=_terms("50.00", lead_time_days=7))),
            Step("counter", "buyer", Payload(terms=_terms("45.00"), message="Volume discount")),
            Step(
                "counter",
                "seller",
                Payload(terms=_terms("47.00", lead_time_days=5), message="Expedited"),
            ),
            Step("accept", "buyer", Payload(reason="Terms acceptable")),
        ),
    ),
    # Offer, counter, accept, then the two-sided close into escrow and shipment.
    "market": Scenario(
        Listing(currency="USD", unit_price=Decimal("120.00"), quantity=50),
        (
            Step("make-offer", "buyer", Payload(terms=_terms("100.00", quantity=50))),
            Step("counter", "seller", Payload(terms=_terms("112.00"), message="Meet halfway")),
            Step("accept", "buyer"),
            Step("request-close", "seller", Payload(data={"escrow_waived": False})),
            Step("confirm-close", "buyer"),
        ),
    ),
    # The offer reference: a validated offer, a counter, acceptance.
    "offer": Scenario(
        Listing(currency="USD", unit_price=Decimal("40000.00"), quantity=1),
        (
            Step(
                "submit-offer",
                "buyer",
                Payload(terms=_terms("36000.00"), message=OFFER_MESSAGE, data=OFFER_DATA),
            ),
            Step("counter", "seller", Payload(terms=_terms("38500.00"), message="Close the gap")),
            Step("accept", "buyer"),
        ),
    ),
    # Sharetribe's default-negotiation: request, offer, counters, payment, delivery, reviews.
    "negotiation": Scenario(
        Listing(currency="EUR", unit_price=Decimal("900.00"), quantity=1),
        (
            Step("request-quote", "buyer", Payload(data={"protectedData": {"brief": "Logo"}})),
            Step("make-offer-from-request", "seller", Payload(terms=_terms("1000.00"))),
            Step("customer-make-counter-offer", "buyer", Payload(terms=_terms("850.00"))),
            Step("provider-make-counter-offer", "seller", Payload(terms=_terms("920.00"))),
            Step("request-payment-to-accept-offer", "buyer"),
            Step("confirm-payment", "buyer"),
            Step("deliver", "seller"),
            Step("accept-deliverable", "buyer"),
            Step("review-1-by-customer", "buyer", Payload(data={"reviewRating": 5})),
            Step("review-2-by-provider", "seller", Payload(data={"reviewRating": 5})),
        ),
    ),
}


def new_deal(process: Process, scenario: Scenario) -> DealState:
    return DealState(
        process=process.name,
        listing=scenario.listing,
        settings=process.settings,
        buyer_id="b",
        seller_id="s",
    )


def walk_once(process: Process, scenario: Scenario, samples: list[int] | None) -> list[str]:
    """Fire the scenario from a fresh deal; append each fire's nanoseconds to `samples`."""
    deal = new_deal(process, scenario)
    states = []
    clock = time.perf_counter_ns
    for i, step in enumerate(scenario.steps):
        actor = ACTORS[step.role]
        now = T0 + timedelta(hours=i)
        start = clock()
        outcome = fire(process, deal, step.transition, actor, step.payload, now=now)
        elapsed = clock() - start
        if samples is not None:
            samples.append(elapsed)
        deal = outcome.deal
        states.append(outcome.to_state)
    return states


def dict_machine(process: Process) -> dict[tuple[str | None, str, str], str]:
    """The same process as a bare lookup table: what a hand-written state machine does."""
    table: dict[tuple[str | None, str, str], str] = {}
    for t in process.transitions.values():
        for role in ACTORS:
            for src in t.src or {None}:
                table[(src, t.name, role)] = t.destination(role)
    return table


def time_baseline(
    table: dict[tuple[str | None, str, str], str],
    steps: Sequence[tuple[str, str]],
    batches: int,
    per_batch: int,
) -> list[float]:
    """Nanoseconds per transition of the dict machine, one figure per batch."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(batches):
        start = clock()
        for _ in range(per_batch):
            state: str | None = None
            for name, role in steps:
                state = table[(state, name, role)]
        out.append((clock() - start) / (per_batch * len(steps)))
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    name: str
    fires_per_walk: int
    walks: int
    samples: list[int]
    wall_ns: int
    baseline_ns: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000

    @property
    def p99_us(self) -> float:
        return percentile(self.samples, 99) / 1000

    @property
    def fires_per_second(self) -> float:
        return len(self.samples) / (sum(self.samples) / 1e9)

    @property
    def baseline_median_ns(self) -> float:
        return statistics.median(self.baseline_ns)


def detail_table(result: Result) -> Table:
    """Median and p99 per step of the walk (samples are in walk order)."""
    steps = SCENARIOS[result.name].steps
    table = Table(title=f"{result.name}: µs per transition", title_justify="left")
    for col in ("#", "transition", "by", "median µs", "p99 µs"):
        table.add_column(col, justify="left" if col in ("transition", "by") else "right")
    for i, step in enumerate(steps):
        own = result.samples[i :: len(steps)]
        table.add_row(
            str(i + 1),
            step.transition,
            step.role,
            f"{statistics.median(own) / 1000:,.1f}",
            f"{percentile(own, 99) / 1000:,.1f}",
        )
    return table


def bench(name: str, walks: int, warmup: int) -> Result | str:
    """Benchmark one process; a string says why it was skipped."""
    try:
        process = builtin(name)
    except (ProcessError, OSError, KeyError) as exc:
        return f"does not load: {str(exc).splitlines()[0]}"
    scenario = SCENARIOS.get(name)
    if scenario is None:
        return "no benchmark walk defined for it"
    try:
        walk_once(process, scenario, None)
    except (DealroomError, KeyError) as exc:
        return f"the walk is refused: {exc}"
    for _ in range(warmup):
        walk_once(process, scenario, None)
    samples: list[int] = []
    gc.collect()
    start = time.perf_counter_ns()
    for _ in range(walks):
        walk_once(process, scenario, samples)
    wall = time.perf_counter_ns() - start

    steps = [(s.transition, s.role) for s in scenario.steps]
    per_batch = max(1, walks // 20)
    baseline = time_baseline(dict_machine(process), steps, batches=40, per_batch=per_batch * 20)
    return Result(name, len(steps), walks, samples, wall, baseline)


def main(argv: Sequence[str] | None = None, *, out: Callable[..., None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few walks: a smoke run for CI")
    parser.add_argument("--walks", type=int, help="walks per process (default 10000, quick 200)")
    parser.add_argument("--detail", action="store_true", help="also the median per transition")
    parser.add_argument("--only", action="append", help="only these processes (repeatable)")
    args = parser.parse_args(argv)
    walks = args.walks or (200 if args.quick else 10_000)
    warmup = max(10, walks // 10)

    console = Console(highlight=False)
    print_ = out or console.print
    print_(
        f"dealroom engine benchmark — Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.machine()}, {walks} walks per process"
    )
    table = Table(title="µs per engine.fire", title_justify="left")
    for col in ("process", "fires/walk", "fires", "median µs", "p99 µs", "fires/s", "dict ns"):
        table.add_column(col, justify="left" if col == "process" else "right")
    table.add_column("× dict", justify="right")
    skipped = []
    results: list[Result] = []
    started = time.perf_counter()
    for name in args.only or BUILTIN:
        result = bench(name, walks, warmup)
        if isinstance(result, str):
            skipped.append(f"{name}: skipped, {result}")
            table.add_row(name, "", "", "", "", "", "", "[yellow]skipped[/]")
            continue
        results.append(result)
        table.add_row(
            name,
            str(result.fires_per_walk),
            f"{len(result.samples):,}",
            f"{result.median_us:,.1f}",
            f"{result.p99_us:,.1f}",
            f"{result.fires_per_second:,.0f}",
            f"{result.baseline_median_ns:,.0f}",
            f"{result.median_us * 1000 / result.baseline_median_ns:,.0f}",
        )
    print_(table)
    if args.detail:
        for result in results:
            print_(detail_table(result))
    for line in skipped:
        print_(f"[yellow]{line}[/]")
    print_(
        "dict ns: a (state, transition, role) -> state lookup per transition, measured in the "
        "same run; × dict: median fire / dict lookup. "
        f"Total {time.perf_counter() - started:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
