"""Rate limits under concurrency, on PostgreSQL, through two API processes: a buyer firing
many offers at once gets exactly `offers_per_day` (3) accepted and 429 NEG-013 with
Retry-After for the rest; many simultaneous offers on one listing give exactly one.

    python -m prove.ratelimit [--rounds 3] [--threads 12]
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from dealroom.db.session import Database, make_engine
from dealroom_harness.servers import running
from prove import cluster

OFFER_FIELDS = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}
MESSAGE = "We would like to buy this lot for our Riyadh warehouse, delivery within a month."


def burst(
    urls: list[str], who: cluster.Person, listings: list[str]
) -> tuple[Counter[int], set[str]]:
    """One request per listing, all released at once by a barrier."""
    gate = threading.Barrier(len(listings), timeout=30)
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    lock = threading.Lock()

    def one(i: int, listing: str) -> None:
        body = {"listing_id": listing, "transition": "submit-offer", "message": MESSAGE,
                "terms": {"unit_price": "40000.00", "quantity": 1}, "data": OFFER_FIELDS}  # fmt: skip
        gate.wait()
        r = httpx.post(f"{urls[i % len(urls)]}/v1/deals", json=body, headers=who.headers, timeout=30)  # fmt: skip
        with lock:
            statuses[r.status_code] += 1
            if r.status_code == 429:
                retry_after.add(f"{r.json().get('code')} Retry-After={'retry-after' in r.headers}")
            elif r.status_code not in (201, 409):
                retry_after.add(f"unexpected {r.status_code}: {r.text[:200]}")

    ts = [threading.Thread(target=one, args=(i, x), daemon=True) for i, x in enumerate(listings)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return statuses, retry_after


def run(rounds: int = 3, threads: int = 12, pg_url: str = cluster.PG_URL) -> bool:
    started = time.monotonic()
    checks: list[tuple[str, bool, str]] = []
    with cluster.scratch_database(pg_url, "ratelimit") as url, cluster.log_dir() as logs:
        db = Database(make_engine(url, pool_size=2))
        sellers = [cluster.add_person(db, f"seller{i}@parts.test") for i in range(4)]
        apis = [cluster.api_proc(url, logs, f"api{i}") for i in range(2)]
        try:
            with running(*apis):
                urls = [a.url for a in apis]
                for n in range(rounds):
                    buyer = cluster.add_person(db, f"buyer{n}@acme.test")
                    listings = [cluster.add_listing(db, sellers[i % 4], process="offer") for i in range(threads)]  # fmt: skip
                    st, notes = burst(urls, buyer, listings)
                    checks.append((f"round {n + 1}: {threads} offers at once on distinct listings",
                                   st[201] == 3 and st[429] == threads - 3 and all(x.startswith("NEG-013 Retry-After=True") for x in notes),
                                   f"{dict(st)}; {sorted(notes)}"))  # fmt: skip
                    other = cluster.add_person(db, f"other{n}@acme.test")
                    one = cluster.add_listing(db, sellers[0], process="offer")
                    st, notes = burst(urls, other, [one] * threads)
                    checks.append((f"round {n + 1}: {threads} offers at once on one listing",
                                   st[201] == 1 and st[409] == threads - 1, f"{dict(st)}; {sorted(notes)}"))  # fmt: skip
        finally:
            db.engine.dispose()
    return cluster.report(
        f"rate limits under concurrency ({time.monotonic() - started:.0f} s)", checks
    )


if __name__ == "__main__":
    cluster.main(run, __doc__, rounds=3, threads=12)
