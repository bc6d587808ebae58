"""A bounded load of deal walks and messages over HTTP, recording every 2xx answer."""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from dealroom_harness.servers import Server
from prove.cluster import Person, valid_until


@dataclass
class Party:
    buyer: Person
    seller: Person
    listings: list[str]


@dataclass
class Record:
    """What the clients were told: only 2xx answers count as promises."""

    deals: dict[str, int] = field(default_factory=dict)  # deal id -> highest version seen
    messages: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    bad: list[str] = field(default_factory=list)  # 5xx other than a proper 503, with details
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw_deal(self, deal: dict[str, Any]) -> None:
        with self.lock:
            self.deals[deal["id"]] = max(self.deals.get(deal["id"], 0), int(deal["version"]))


class Load:
    """Threads walking deals through rfq (request, quote with a short validity, messages,
    sometimes accept) against a list of APIs, failing over on connection errors."""

    def __init__(self, apis: list[Server], parties: list[Party], *, quote_ttl: tuple[float, float] = (2.0, 6.0), think: float = 0.0) -> None:  # fmt: skip
        self.apis = apis
        self.parties = parties
        self.quote_ttl = quote_ttl
        self.think = think
        self.record = Record()
        self.stop = threading.Event()
        self._rr = itertools.count()

    def _call(self, method: str, path: str, who: Person, body: Any = None, *, idem: bool = True) -> httpx.Response | None:  # fmt: skip
        """One request, retried on another API after a connection error (same
        Idempotency-Key, so a retry cannot apply twice). None when every try failed."""
        headers = dict(who.headers)
        if idem and method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for _ in range(6):
            if self.stop.is_set() and method == "GET":
                return None
            api = self.apis[next(self._rr) % len(self.apis)]
            try:
                r = httpx.request(method, api.url + path, json=body, headers=headers, timeout=10)
            except httpx.TransportError:
                with self.record.lock:
                    self.record.transport_errors += 1
                time.sleep(0.2)
                continue
            with self.record.lock:
                self.record.statuses[r.status_code] += 1
                if r.status_code >= 500 and not (
                    r.status_code == 503
                    and r.headers.get("content-type", "").startswith("application/problem+json")
                    and r.json().get("code") == "NEG-010"
                    and "retry-after" in r.headers
                ):
                    self.record.bad.append(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
            if r.status_code == 503:
                time.sleep(0.3)
                continue
            return r
        return None

    def walk(self, party: Party, rng: random.Random) -> None:
        listing = rng.choice(party.listings)
        r = self._call("POST", "/v1/deals", party.buyer, {"listing_id": listing, "transition": "request-quote", "terms": {"quantity": rng.randint(10, 900)}})  # fmt: skip
        if r is None or r.status_code != 201:
            return
        deal = r.json()
        self.record.saw_deal(deal)
        did = deal["id"]
        ttl = rng.uniform(*self.quote_ttl)
        r = self._call("POST", f"/v1/deals/{did}/transitions", party.seller, {"name": "send-quote", "expected_version": deal["version"], "terms": {"unit_price": f"{rng.randint(40, 60)}.00", "lead_time_days": 7, "valid_until": valid_until(ttl)}})  # fmt: skip
        if r is None or r.status_code != 200:
            return
        deal = r.json()
        self.record.saw_deal(deal)
        for i in range(rng.randint(1, 3)):
            who = party.buyer if i % 2 == 0 else party.seller
            r = self._call("POST", f"/v1/deals/{did}/messages", who, {"body": f"note {i} {uuid.uuid4().hex[:8]}"})  # fmt: skip
            if r is not None and r.status_code == 201:
                with self.record.lock:
                    self.record.messages.add(r.json()["id"])
        if rng.random() < 0.3:  # accept before the quote lapses; the rest expire by timer
            r = self._call("POST", f"/v1/deals/{did}/transitions", party.buyer, {"name": "accept", "expected_version": deal["version"]})  # fmt: skip
            if r is not None and r.status_code == 200:
                self.record.saw_deal(r.json())

    def _thread(self, index: int, deadline: float, max_walks: int) -> None:
        rng = random.Random(index)
        party = self.parties[index % len(self.parties)]
        for _ in range(max_walks):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                self.walk(party, rng)
            except Exception as exc:  # a client bug must not hide as a pass
                with self.record.lock:
                    self.record.bad.append(f"client error: {exc!r}")
            if self.think:
                time.sleep(self.think)

    def start(self, threads: int, seconds: float, max_walks: int = 100_000) -> list[threading.Thread]:  # fmt: skip
        deadline = time.monotonic() + seconds
        out = [threading.Thread(target=self._thread, args=(i, deadline, max_walks), daemon=True) for i in range(threads)]  # fmt: skip
        for t in out:
            t.start()
        return out

    def join(self, threads: list[threading.Thread], timeout: float) -> bool:
        end = time.monotonic() + timeout
        for t in threads:
            t.join(max(end - time.monotonic(), 0.01))
        self.stop.set()
        return not any(t.is_alive() for t in threads)
