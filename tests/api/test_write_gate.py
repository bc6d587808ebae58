"""The write gate: at most `write_concurrency` write transactions of one API process at
once; requests beyond it wait before BEGIN, and reads never wait for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from dealroom.app import create_app
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db.session import Database
from dealroom.edge import uow as deps
from dealroom.services.uow import UnitOfWork
from people import TEST_SECRET, Person, make_listing, open_deal


class Peak:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *_: Any) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize(("limit", "expected"), [(2, 2), (1, 1), (0, 6)])
def test_the_gate_lets_limit_holders_in_at_once(limit: int, expected: int) -> None:
    gate, peak = deps.WriteGate(limit), Peak()

    def hold() -> None:
        with gate.turn(), peak:
            time.sleep(0.05)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: hold(), range(6)))
    assert (peak.peak, peak.now) == (expected, 0)


def test_writes_queue_for_their_turn_and_reads_pass(db: Database, clock: TestClock, people: dict[str, Person], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = Config(database_url=str(db.engine.url), secret_key=TEST_SECRET, write_concurrency=1)
    app = create_app(config, database=db, clock=clock)
    writes, real_uow = Peak(), deps._transaction

    @contextmanager
    def counted(request: Request, *, write: bool) -> Iterator[UnitOfWork]:
        if not write:
            with real_uow(request, write=write) as uow:
                yield uow
            return
        with writes, real_uow(request, write=write) as uow:
            yield uow

    monkeypatch.setattr(deps, "_transaction", counted)
    buyer, seller = people["buyer"], people["seller"]
    with TestClient(app) as client:
        listing = make_listing(client, seller)
        deal = open_deal(client, buyer, listing, transition="make-offer",
                         terms={"unit_price": "45.00", "quantity": 10})  # fmt: skip
        url = f"/v1/deals/{deal['id']}/messages"

        def say(i: int) -> int:
            who = buyer if i % 2 else seller
            return client.post(url, json={"body": f"note {i}"}, headers=who.headers).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(say, range(16)))
        assert codes == [201] * 16
        assert writes.peak == 1
        # A read goes through while a write holds the only turn.
        with app.state.write_gate.turn():
            r = client.get(f"/v1/deals/{deal['id']}/messages", headers=buyer.headers)
        assert r.status_code == 200
        assert len(r.json()["items"]) == 16
