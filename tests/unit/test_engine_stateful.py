"""Random walks through every built-in process (Hypothesis stateful testing).

Rules pick a transition (mostly one the state offers, sometimes any), an actor, a payload
that is valid or broken in one of many ways, and move the clock. Whatever happens:
a refused move leaves the deal untouched and returns nothing; the quota holds; at most one
version is pending; an accepted version never changes; a final state absorbs every move;
only the counterparty counters or accepts; versions are numbered 1..n and their statuses
only move forward.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import factories
from dealroom import processes
from dealroom.domain import engine, permissions
from dealroom.domain.errors import DealroomError
from dealroom.domain.model import PARTIES, Process
from dealroom.domain.quotes import QuoteVersion
from dealroom.domain.state import Actor, DealState, Payload

SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

PRICE_FACTORS = ["0.3", "0.49", "0.5", "0.9", "0.995", "1", "1.005", "1.02", "1.5", "1.6", "3"]
ODD_VALUES: list[Any] = [None, "", "abc", True, [], {}, -1, 0, "NaN", "1e-20", "1E+30", "١٢"]
TERM_KEYS = ["unit_price", "quantity", "lead_time_days", "discount_percent", "valid_until", "notes"]


@st.composite
def payloads(draw: st.DrawFn, process: Process, deal: DealState, name: str, role: str) -> Payload:
    """A valid payload, or one broken in a single way, or a wild one."""
    t = process.transitions[name]
    valid = factories.valid_payload(process, deal, t, role)
    kind = draw(
        st.sampled_from(
            ["valid", "valid", "valid", "price", "lead", "quantity", "message", "odd", "unknown",
             "past", "empty", "data", "timer"]
        )
    )  # fmt: skip
    terms = dict(valid.terms or {})
    message, data, timer_rule = valid.message, dict(valid.data), None
    pending = deal.pending
    base = pending.terms.unit_price if pending else deal.listing.unit_price
    if kind == "price":
        factor = draw(st.sampled_from(PRICE_FACTORS))
        terms["unit_price"] = str((base * Decimal(factor)).quantize(Decimal("0.01")))
    elif kind == "lead":
        terms["lead_time_days"] = draw(st.sampled_from([0, -1, 1, 3650, 3651]))
    elif kind == "quantity":
        terms["quantity"] = draw(st.sampled_from([1, 50, 99, 100, 5000, 5001, 10**12]))
    elif kind == "message":
        message = draw(st.sampled_from([None, "", "  ", "ok", "x" * 49, "x" * 1001]))
    elif kind == "odd":
        terms[draw(st.sampled_from(TERM_KEYS))] = draw(st.sampled_from(ODD_VALUES))
    elif kind == "unknown":
        terms["colour"] = "red"
    elif kind == "past":
        terms["valid_until"] = (factories.T0 - timedelta(days=1)).isoformat()
    elif kind == "empty":
        return Payload()
    elif kind == "data":
        data["escrow_waived"] = draw(st.sampled_from([True, False, "yes", None]))
        data["reviewRating"] = draw(st.sampled_from([1, 5, 0, 6, "5", None]))
        data[draw(st.sampled_from(["buyer_role", "timeline", "financing"]))] = "other"
    elif kind == "timer":
        timer_rule = draw(st.sampled_from([r.rule for r in t.timers] or [None]))
    return Payload(
        terms=terms or valid.terms,
        message=message,
        reason=valid.reason,
        data=data,
        timer_rule=timer_rule,
    )


class DealMachine(RuleBasedStateMachine):
    process: Process

    @initialize(
        mode=st.sampled_from(factories.SALE_MODES),
        quota=st.sampled_from([100, 100, 9, 5]),
    )
    def open_deal(self, mode: str, quota: int) -> None:
        self.deal = factories.new_deal(
            self.process, sale_mode=mode, settings={"transition_quota": quota}
        )
        self.now = factories.T0
        self.accepted: QuoteVersion | None = None
        self.absorbing_checked: str | None = None
        event("deal opened")

    @precondition(lambda self: self.deal.state in self.process.final_states)
    @rule(
        mode=st.sampled_from(factories.SALE_MODES),
        quota=st.sampled_from([100, 100, 9, 5]),
    )
    def open_another_deal(self, mode: str, quota: int) -> None:
        """Once a deal has ended (and been seen to absorb every move), start another."""
        self.final_state_absorbs_every_move()
        self.open_deal(mode, quota)

    @rule(hours=st.sampled_from([6, 23, 25, 49, 24 * 8, 24 * 31]))
    def let_time_pass(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(data=st.data(), minutes=st.integers(0, 180))
    def make_an_offered_move(self, data: st.DataObject, minutes: int) -> None:
        """A move the state offers, by someone allowed to make it, mostly well formed."""
        self.now += timedelta(minutes=minutes)
        p, deal = self.process, self.deal
        offered = p.outgoing.get(deal.state, ()) if deal.state else p.initial_transitions
        if not offered:
            return self.make_any_move(data)
        # moves that keep the deal open come up six times as often as ending ones, so that
        # walks get deep enough to meet the round, version and quota limits
        weighted = [
            t.name for t in offered for _ in range(1 if t.destinations() <= p.final_states else 6)
        ]
        name = data.draw(st.sampled_from(weighted), label="transition")
        allowed = sorted(permissions.permitted_roles(p, deal, p.transitions[name]))
        role = data.draw(st.sampled_from(allowed or factories.ROLES), label="role")
        if data.draw(st.sampled_from([True, True, False]), label="valid"):
            payload = factories.valid_payload(p, deal, p.transitions[name], role)
        else:
            payload = data.draw(payloads(p, deal, name, role), label="payload")
        return self._fire(data, name, role, payload)

    @rule(data=st.data())
    def make_any_move(self, data: st.DataObject) -> None:
        """Any transition, by anyone, with a payload that may be broken."""
        p, deal = self.process, self.deal
        name = data.draw(st.sampled_from(sorted(p.transitions)), label="transition")
        role = data.draw(st.sampled_from(factories.ROLES), label="role")
        payload = data.draw(payloads(p, deal, name, role), label="payload")
        return self._fire(data, name, role, payload)

    def _fire(self, data: st.DataObject, name: str, role: str, payload: Payload) -> None:
        p, deal = self.process, self.deal
        actor = Actor(
            role=role,
            user_id=role,
            kyc_verified=data.draw(st.booleans(), label="kyc"),
            plan=data.draw(st.sampled_from(["free", "paid"]), label="plan"),
            blocked=data.draw(st.sampled_from([False] * 19 + [True]), label="blocked"),
        )
        before = copy.deepcopy(deal)
        pending_before = deal.pending
        try:
            out = engine.fire(p, deal, name, actor, payload, now=self.now)
        except DealroomError:
            assert deal == before, "a refused move changed the deal"
            return
        assert deal == before, "a move changed the deal it was given"
        assert deal.state not in p.final_states, f"{name} fired from final state {deal.state}"
        t = p.transitions[name]
        answers = {"counter", "accept-quote"} & set(t.actions)
        if p.settings.counter_rules and answers and pending_before and role in PARTIES:
            assert role != pending_before.created_by_role, f"{role} answered its own quote"
        new = out.deal
        for old_v in before.versions:
            now_v = new.versions[old_v.number - 1]
            assert (now_v.number, now_v.terms, now_v.created_by_role, now_v.created_at) == (
                old_v.number,
                old_v.terms,
                old_v.created_by_role,
                old_v.created_at,
            ), "a version's terms changed"
            if old_v.status != "pending":
                assert now_v.status == old_v.status, "a decided version's status moved"
        if self.accepted is not None:
            assert new.versions[self.accepted.number - 1] == self.accepted
        self.deal = new
        event(f"{name} -> {new.state}")
        if new.accepted is not None and self.accepted is None:
            self.accepted = new.accepted

    @invariant()
    def quota_holds(self) -> None:
        if hasattr(self, "deal"):
            assert self.deal.transition_count <= self.deal.settings.transition_quota

    @invariant()
    def at_most_one_version_is_pending(self) -> None:
        if hasattr(self, "deal"):
            assert sum(v.status == "pending" for v in self.deal.versions) <= 1

    @invariant()
    def versions_are_numbered_one_to_n(self) -> None:
        if hasattr(self, "deal"):
            numbers = [v.number for v in self.deal.versions]
            assert numbers == list(range(1, len(numbers) + 1))

    @invariant()
    def at_most_one_version_is_accepted(self) -> None:
        if hasattr(self, "deal"):
            assert sum(v.status == "accepted" for v in self.deal.versions) <= 1

    @invariant()
    def final_state_absorbs_every_move(self) -> None:
        if not hasattr(self, "deal"):
            return
        deal, p = self.deal, self.process
        if deal.state not in p.final_states or self.absorbing_checked == deal.state:
            return
        self.absorbing_checked = deal.state
        for name, t in p.transitions.items():
            for role in factories.ROLES:
                payload = factories.valid_payload(p, deal, t, role)
                with pytest.raises(DealroomError):
                    engine.fire(p, deal, name, factories.actor(role), payload, now=self.now)


@pytest.mark.parametrize("name", factories.builtin_params())
def test_random_walks_through_the_process_keep_every_invariant(name):
    machine = type(f"{name.title()}Machine", (DealMachine,), {"process": processes.builtin(name)})
    run_state_machine_as_test(machine, settings=SETTINGS)
