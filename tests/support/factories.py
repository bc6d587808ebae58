"""Plain functions that build deals, actors and payloads for the engine's tests.

Nothing here touches a database: a `DealState` is a frozen value, and `walk` fires a path
of transitions through the pure engine. `find_paths` explores a process breadth-first,
through the engine itself, to find a short path into every state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from dealroom import processes
from dealroom.domain import engine
from dealroom.domain.actions import VERSION_ACTIONS
from dealroom.domain.errors import DealroomError
from dealroom.domain.model import Process, Transition
from dealroom.domain.settings import Settings
from dealroom.domain.state import SYSTEM, Actor, DealState, Listing, Outcome, Payload

#: The reference timeline starts here (rfq reference 4.2).
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
#: The events of the reference example (RFQ-2026-0042), in the order the reference gives.
REFERENCE_EVENTS = (
    "RFQ_CREATED",
    "QUOTE_SENT",
    "COUNTER_SUBMITTED",
    "QUOTE_REVISED",
    "QUOTE_ACCEPTED",
    "ORDER_CREATED",
)
ROLES = ("buyer", "seller", "operator", "system")
SALE_MODES = ("negotiable", "buy_now", "auction")
BUYER_ID = "u-buyer"
SELLER_ID = "u-seller"

#: Long enough for the offer process's 50-character minimum, and says something.
OFFER_MESSAGE = (
    "We would like to buy at this price; financing is arranged and we can close in 30 days."
)
COUNTER_MESSAGE = "Volume discount expected for this quantity"
OFFER_FIELDS = {"buyer_role": "company", "timeline": "30days", "financing": "cash"}

# --- actors -------------------------------------------------------------------------------


def buyer(**kw: Any) -> Actor:
    return Actor(role="buyer", user_id=kw.pop("user_id", BUYER_ID), **kw)


def seller(**kw: Any) -> Actor:
    return Actor(role="seller", user_id=kw.pop("user_id", SELLER_ID), **kw)


def operator(**kw: Any) -> Actor:
    return Actor(role="operator", user_id=kw.pop("user_id", "u-operator"), **kw)


def system() -> Actor:
    return SYSTEM


def actor(role: str, **kw: Any) -> Actor:
    return {"buyer": buyer, "seller": seller, "operator": operator}.get(role, _system)(**kw)


def _system(**_: Any) -> Actor:
    return SYSTEM


# --- listings and deals -------------------------------------------------------------------


def rfq_listing(**kw: Any) -> Listing:
    """Industrial parts in SAR, as in the rfq reference's example."""
    fields: dict[str, Any] = {
        "currency": "SAR",
        "unit_price": Decimal("50.00"),
        "quantity": 1000,
        "min_order_qty": 100,
        "max_order_qty": 5000,
        "sale_mode": "negotiable",
        "category": "industrial-parts",
        "title": "M8 hex bolts, box of 100",
    }
    fields.update(kw)
    return Listing(**fields)


def offer_listing(**kw: Any) -> Listing:
    """A small business for sale: one unit, priced so that an opening offer needs no KYC."""
    fields: dict[str, Any] = {
        "currency": "USD",
        "unit_price": Decimal("40000.00"),
        "quantity": 1,
        "sale_mode": "negotiable",
        "category": "online-business",
        "title": "Niche newsletter with 12k subscribers",
    }
    fields.update(kw)
    return Listing(**fields)


def listing_for(process_name: str, **kw: Any) -> Listing:
    return offer_listing(**kw) if process_name == "offer" else rfq_listing(**kw)


def process_of(process: Process | str) -> Process:
    return processes.builtin(process) if isinstance(process, str) else process


def new_deal(
    process: Process | str,
    listing: Listing | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    buyer_id: str | None = BUYER_ID,
    seller_id: str | None = SELLER_ID,
    **listing_kw: Any,
) -> DealState:
    """A deal that has not started yet, with the process's settings plus `settings`."""
    p = process_of(process)
    lst = listing or listing_for(p.name, **listing_kw)
    return DealState(
        process=p.name,
        listing=lst,
        settings=Settings.layered(p.settings, settings),
        buyer_id=buyer_id,
        seller_id=seller_id,
    )


# --- payloads -----------------------------------------------------------------------------


def _cents(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def proposer_role(t: Transition, role: str) -> str | None:
    return role if role in ("buyer", "seller") else t.proposer


def valid_payload(process: Process, deal: DealState, t: Transition, role: str) -> Payload:
    """A payload that passes every rule for `role` firing `t` on `deal` as it stands.

    Counters move the price a few percent from the pending version (buyers down, sellers
    up), within CTR-002 and NEG-V01; first proposals ask 90% (buyer) or 100% (seller) of
    the listing price; every move carries a message long enough for the offer rules.
    """
    actions = set(t.actions)
    terms: dict[str, Any] | None = None
    pending = deal.pending
    who = proposer_role(t, role)
    if "open-request" in actions:
        terms = {"quantity": deal.listing.quantity}
    elif actions & VERSION_ACTIONS:
        if pending is None:
            # a buyer opens at 90% of the asking price, unless the move binds at once (buy-now)
            binding = "accept-quote" in actions
            price = deal.listing.unit_price * (
                Decimal("0.90") if who == "buyer" and not binding else 1
            )
            terms = {"unit_price": str(_cents(price)), "lead_time_days": 7}
        else:
            if "revise" in actions:  # the author concedes a little on its own terms
                factor = Decimal("1.02") if who == "buyer" else Decimal("0.98")
            else:  # an answer: buyers bid lower, sellers ask higher
                factor = Decimal("0.96") if who == "buyer" else Decimal("1.02")
            terms = {"unit_price": str(_cents(pending.terms.unit_price * factor))}
    data: dict[str, Any] = {
        **OFFER_FIELDS,
        "escrow_waived": False,
        "protectedData": {"po_number": "PO-77"},
        "metadata": {"source": "tests"},
        "reviewRating": 5,
        "reviewContent": "Smooth deal, goods as described.",
    }
    return Payload(
        terms=terms,
        message=OFFER_MESSAGE if "open-request" not in actions else "Need for Q2 production",
        reason="Terms acceptable",
        data=data,
    )


# --- walking a process --------------------------------------------------------------------

Step = tuple[str, str]  # (transition name, role)
_PATHS: dict[tuple[str, int], tuple[Process, dict[str | None, Path]]] = {}


@dataclass(frozen=True)
class Path:
    """How to bring a new deal into a state: the listing's sale mode and the moves."""

    sale_mode: str
    steps: tuple[Step, ...]


def fire(
    process: Process | str,
    deal: DealState,
    transition: str,
    role: str,
    payload: Payload | None = None,
    *,
    now: datetime,
    **actor_kw: Any,
) -> Outcome:
    """Fire with a valid payload unless one is given."""
    p = process_of(process)
    if payload is None:
        payload = valid_payload(p, deal, p.transitions[transition], role)
    return engine.fire(p, deal, transition, actor(role, **actor_kw), payload, now=now)


def walk(
    process: Process | str,
    steps: Iterable[Step],
    deal: DealState | None = None,
    *,
    start: datetime = T0,
    every: timedelta = timedelta(hours=1),
    sale_mode: str | None = None,
) -> tuple[DealState, list[Outcome]]:
    """Fire `steps` with valid payloads, one `every` apart; returns the deal and outcomes."""
    p = process_of(process)
    if deal is None:
        deal = new_deal(p, **({"sale_mode": sale_mode} if sale_mode else {}))
    outcomes: list[Outcome] = []
    now = start
    for name, role in steps:
        outcome = fire(p, deal, name, role, now=now)
        outcomes.append(outcome)
        deal = outcome.deal
        now += every
    return deal, outcomes


def find_paths(process: Process) -> dict[str | None, Path]:
    """A shortest known path into every state, found by firing the engine breadth-first.

    The key `None` is the deal that has not started. Listings of each sale mode are tried
    in turn, so a state reached only by `buy-now` is found too.
    """
    key = (process.name, id(process))
    if key in _PATHS:
        return _PATHS[key][1]
    found: dict[str | None, Path] = {None: Path("negotiable", ())}
    for mode in SALE_MODES:
        queue: deque[tuple[DealState, Path]] = deque(
            [(new_deal(process, sale_mode=mode), Path(mode, ()))]
        )
        seen: set[str | None] = {None}
        while queue:
            deal, path = queue.popleft()
            now = T0 + timedelta(hours=len(path.steps))
            for t in (
                process.outgoing.get(deal.state, ()) if deal.state else process.initial_transitions
            ):
                for role in ROLES:
                    try:
                        out = fire(process, deal, t.name, role, now=now)
                    except DealroomError:
                        continue
                    state = out.deal.state
                    if state in seen:
                        continue
                    seen.add(state)
                    nxt = Path(mode, (*path.steps, (t.name, role)))
                    if state not in found:
                        found[state] = nxt
                    queue.append((out.deal, nxt))
        if set(process.states) <= set(found):
            break
    _PATHS[key] = (process, found)  # holding the process keeps its id from being reused
    return found


def deal_in(process: Process | str, state: str | None) -> DealState:
    """A deal brought into `state` along the shortest path `find_paths` knows."""
    p = process_of(process)
    path = find_paths(p)[state]
    deal, _ = walk(p, path.steps, sale_mode=path.sale_mode)
    return deal


def time_after(path: Path) -> datetime:
    """The `now` of the move after `path` (walk spaces moves an hour apart)."""
    return T0 + timedelta(hours=len(path.steps))


# --- built-in processes as test parameters ------------------------------------------------


def builtin_or_none(name: str) -> tuple[Process | None, str]:
    """The built-in process, or None and why it is not available (negotiation is being
    written elsewhere: it may be absent or unfinished)."""
    try:
        return processes.builtin(name), ""
    except Exception as exc:  # absent file, TOML half written, static check failures
        return None, f"built-in process {name!r} does not load yet: {exc!r}"


def builtin_params() -> list[Any]:
    """One pytest.param per built-in process; those that do not load are skipped."""
    out = []
    for name in processes.BUILTIN:
        p, why = builtin_or_none(name)
        marks = () if p is not None else (pytest.mark.skip(reason=why),)
        out.append(pytest.param(name, marks=marks, id=name))
    return out
