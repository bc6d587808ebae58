"""Four `dealroom worker --once` processes against one PostgreSQL and 10,000 due timers:
every timer fires exactly once, counted in the audit chains.

One real deal is opened through the services (a request for quote, with its pending NEG-T01
timer); it is then cloned row for row into 9,999 more, each with its own id, reference and
hash chain recomputed by `services.audit`, so every clone is a deal the services would have
written. Then four OS processes start at the same instant and race for the timers.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from dbsupport import PG_URL, drop_database, fresh_database
from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.state import Payload
from dealroom.services import deals
from dealroom.services.audit import chain
from dealroom.services.notifications import preferences
from dealroom.services.uow import session_scope, transaction
from people import TEST_SECRET, add_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL,
        reason="several worker processes racing for timers need PostgreSQL "
        "(set DEALROOM_TEST_DATABASE_URL)",
    ),
]

DEALS = 10_000
WORKERS = 4
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
CONFIG = Config(database_url="unused", secret_key=TEST_SECRET)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = fresh_database(tmp_path)
    yield db
    drop_database(db)


def open_template(db: Database) -> str:
    buyer = add_user(db, T0, "buyer@acme.test")
    seller = add_user(db, T0, "seller@parts.test")
    with transaction(db, now=T0, config=CONFIG) as uow:
        s = uow.session
        for person in (buyer, seller):
            # This test is about timers; the 20,000 timeout emails have tests of their own.
            preferences.update(uow, s.get(m.User, person.id), email="off")  # type: ignore[arg-type]
        listing = m.Listing(owner_id=seller.id, title="Industrial bearings", currency="SAR",
                            unit_price=Decimal("50.00"), quantity=1000, process="rfq",
                            created_at=T0, updated_at=T0)  # fmt: skip
        s.add(listing)
        s.flush()
        user = s.get(m.User, buyer.id)
        assert user is not None
        result = deals.open_deal(uow, user, listing_id=listing.id, transition="request-quote",
                                 payload=Payload(terms={"quantity": 1000}, message="Q2"))  # fmt: skip
        return str(result.deal.id)


def _row(obj: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in skip}


def clone(db: Database, template_id: str, copies: int) -> list[str]:
    """`copies` more deals like the template, each a valid deal with its own chain."""
    with session_scope(db) as s:
        deal = s.get(m.Deal, template_id)
        assert deal is not None
        events = list(chain.deal_events(s, template_id))
        timers = s.scalars(
            select(m.Timer).where(m.Timer.deal_id == template_id, m.Timer.status == "pending")
        ).all()
        feed = int(s.execute(select(func.max(m.Event.feed_seq))).scalar_one())
        year = f"DEAL-{T0.year}"
        counter = s.get(m.Counter, year)
        assert counter is not None
        first_number = counter.value + 1
        counter.value += copies

        deal_rows, event_rows, timer_rows = [], [], []
        for i in range(copies):
            deal_id = m.new_id()
            prev = chain.GENESIS
            for e in events:
                copy = m.Event(**_row(e, skip=("id", "hash")))
                copy.deal_id, copy.prev_hash = deal_id, prev
                copy.feed_seq = feed + 1 + i * len(events) + e.seq - 1
                copy.hash = prev = chain.event_hash(prev, copy)
                event_rows.append(_row(copy, skip=("id",)))
            deal_rows.append(
                {**_row(deal), "id": deal_id, "ref": f"{year}-{first_number + i:05d}",
                 "head_hash": prev}
            )  # fmt: skip
            timer_rows += [{**_row(t, skip=("id",)), "deal_id": deal_id} for t in timers]
        s.execute(insert(m.Deal), deal_rows)
        s.execute(insert(m.Event), event_rows)
        s.execute(insert(m.Timer), timer_rows)
        return [r["id"] for r in deal_rows]


def test_four_worker_processes_fire_10000_due_timers_exactly_once(
    database: Database, tmp_path: Path
) -> None:
    db = database
    started = time.monotonic()
    template = open_template(db)
    deal_ids = [template, *clone(db, template, DEALS - 1)]
    with db.session(write=False) as s:
        due = s.execute(
            select(func.count()).select_from(m.Timer)
            .where(m.Timer.status == "pending", m.Timer.rule == "NEG-T01")
        ).scalar_one()  # fmt: skip
        assert due == DEALS
        for deal in s.scalars(select(m.Deal).where(m.Deal.id.in_(deal_ids[:50]))):
            assert chain.verify_deal(s, deal).valid  # the clones are valid deals
    loaded = time.monotonic() - started

    when = (T0 + timedelta(hours=49)).isoformat()
    env = {
        **os.environ,
        "DEALROOM_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "DEALROOM_MAIL_DIR": str(tmp_path / "mail"),  # the timeout emails land here
    }
    command = [sys.executable, "-m", "dealroom", "worker", "--once", "--now", when]
    fire_start = time.monotonic()
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(WORKERS)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    fired_in = time.monotonic() - fire_start
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out + err
    counts = [int(re.search(r"fired (\d+)", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    print(f"\nloaded {DEALS} deals in {loaded:.1f}s; {WORKERS} workers fired {counts} "
          f"in {fired_in:.1f}s ({DEALS / fired_in:.0f} timers/s)")  # fmt: skip
    assert sum(counts) == DEALS
    assert sum(1 for n in counts if n) >= 2, "the workers did not run side by side"

    with db.session(write=False) as s:
        timeouts = dict(
            s.execute(
                select(m.Event.deal_id, func.count())
                .where(m.Event.type == "NEGOTIATION_TIMEOUT", m.Event.actor_type == "system")
                .group_by(m.Event.deal_id)
            ).all()
        )
        assert set(timeouts) == set(deal_ids)
        assert set(timeouts.values()) == {1}
        statuses = dict(
            s.execute(
                select(m.Timer.status, func.count())
                .where(m.Timer.rule == "NEG-T01")
                .group_by(m.Timer.status)
            ).all()
        )
        assert statuses == {"fired": DEALS}
        assert (
            s.execute(
                select(func.count()).select_from(m.Timer).where(m.Timer.status == "pending")
            ).scalar_one()
            == 0
        )  # NEG-T04 was cancelled by the expiry, in the same transaction
        states = dict(s.execute(select(m.Deal.state, func.count()).group_by(m.Deal.state)).all())
        assert states == {"expired": DEALS}
        sample = random.Random(4).sample(deal_ids, 200)
        for deal in s.scalars(select(m.Deal).where(m.Deal.id.in_(sample))):
            verified = chain.verify_deal(s, deal)
            assert verified.valid, (deal.ref, verified)
            assert verified.events == 2, (deal.ref, verified)

    # A second round finds nothing left to do.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fired 0" in again.stdout, again.stdout
