"""Calls raced against each other in threads of this process, released together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dbsupport import PG_URL

T = TypeVar("T")


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released together by a barrier; answers what each
    returned or raised, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = calls[i]()
        except Exception as exc:  # surfaced by the caller's assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a raced call hung"
    return results


def side_by_side(call: Callable[[], T], times: int = 2) -> list[T]:
    """`call` as several workers would make it: raced on PostgreSQL (row locks and SKIP
    LOCKED share the work between them); one after the other on SQLite, which has one
    writer at a time, so the later ones find nothing left to do."""
    if not PG_URL:
        return [call() for _ in range(times)]
    results = race([call] * times)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
