"""Every (state, transition, actor) of every built-in process, against the process's data.

For each state a deal can reach (and the deal not started yet), each transition of the
process and each of buyer, seller, operator and system, firing gives exactly one answer:
success when the transition leaves the state and the actor may fire it, otherwise the
typed error the rfq reference documents. The expectation is computed from the process
data here, not taken from the engine; `available_transitions` must agree with it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import factories
from dealroom import processes
from dealroom.domain import engine, permissions
from dealroom.domain.actions import VERSION_ACTIONS
from dealroom.domain.errors import (
    AlreadyAccepted,
    DealroomError,
    InvalidTransition,
    NotAuthorized,
    QuoteExpired,
    RequestExpired,
)
from dealroom.domain.model import PARTIES, Process, Transition
from dealroom.domain.state import DealState

CONCRETE = frozenset(factories.ROLES)


def state_id(state: str | None) -> str:
    return state or "(new)"


def table_params() -> list[Any]:
    """(process, state, sale mode, transition, role) for every built-in process that loads.

    A deal not started yet is tried on a listing of every sale mode, so `buy-now` and
    `win-auction` are fired where they are offered, and refused where they are not.
    """
    out: list[Any] = []
    for name in processes.BUILTIN:
        p, why = factories.builtin_or_none(name)
        if p is None:
            skip = pytest.mark.skip(reason=why)
            out.append(pytest.param(name, None, None, None, None, marks=skip, id=name))
            continue
        for state, path in factories.find_paths(p).items():
            modes = factories.SALE_MODES if state is None else (path.sale_mode,)
            for mode in modes:
                where = state_id(state) if state else f"(new {mode})"
                for t in p.transitions:
                    for role in factories.ROLES:
                        out.append(
                            pytest.param(
                                name, state, mode, t, role, id=f"{name}:{where}:{t}:{role}"
                            )
                        )
    return out


def state_role_params() -> list[Any]:
    out: list[Any] = []
    for name in processes.BUILTIN:
        p, why = factories.builtin_or_none(name)
        if p is None:
            out.append(pytest.param(name, None, None, marks=pytest.mark.skip(reason=why), id=name))
            continue
        for state in factories.find_paths(p):
            for role in factories.ROLES:
                out.append(pytest.param(name, state, role, id=f"{name}:{state_id(state)}:{role}"))
    return out


def into_final_params() -> list[Any]:
    """(process, transition, from-state, role) for every move into a final state."""
    out: list[Any] = []
    for name in processes.BUILTIN:
        p, why = factories.builtin_or_none(name)
        if p is None:
            out.append(pytest.param(name, None, None, marks=pytest.mark.skip(reason=why), id=name))
            continue
        for t in p.transitions.values():
            if not t.destinations() & p.final_states:
                continue
            for src in sorted(t.src) or [None]:
                if src in factories.find_paths(p):
                    out.append(
                        pytest.param(name, t.name, src, id=f"{name}:{t.name}:{state_id(src)}")
                    )
    return out


def state_params() -> list[Any]:
    out: list[Any] = []
    for name in processes.BUILTIN:
        p, why = factories.builtin_or_none(name)
        if p is None:
            out.append(pytest.param(name, None, marks=pytest.mark.skip(reason=why), id=name))
            continue
        for state in factories.find_paths(p):
            out.append(pytest.param(name, state, id=f"{name}:{state_id(state)}"))
    return out


# --- the expectation, from the process data -----------------------------------------------


def expected_roles(deal: DealState, t: Transition) -> set[str]:
    """Who may fire `t` now: the named roles, the turn-taking roles resolved against the
    pending version's author, and operators for `operator-*` transitions."""
    roles = set(t.actors & CONCRETE)
    pending = deal.pending
    if pending is not None and pending.created_by_role in PARTIES:
        author = pending.created_by_role
        other = "seller" if author == "buyer" else "buyer"
        if "counterparty" in t.actors:
            roles.add(other)
        if "author" in t.actors:
            roles.add(author)
    if t.name.startswith("operator-"):
        roles.add("operator")
    return roles


def expected_error(process: Process, deal: DealState, t: Transition, role: str) -> type | None:
    """The error class firing should raise, or None for success.

    The state is checked before the actor: a move that cannot happen now is NEG-007 for
    everyone. A closed deal answers with the reason it closed where the rfq reference
    names one: NEG-005 once terms were accepted, NEG-001 when the quote lapsed, NEG-006
    when the request lapsed before any quote.
    """
    if t.sale_modes and deal.listing.sale_mode not in t.sale_modes:
        return InvalidTransition
    if deal.state is None:
        if not t.initial:
            return InvalidTransition
    elif deal.state not in t.src:
        if deal.state in process.final_states:
            if any(v.status == "accepted" for v in deal.versions):
                return AlreadyAccepted
            if deal.versions and deal.versions[-1].status == "expired":
                return QuoteExpired
            if (
                not deal.versions
                and deal.last_transition in process.transitions
                and ("expire-quote" in process.transitions[deal.last_transition].actions)
            ):
                return RequestExpired
        return InvalidTransition
    if role not in expected_roles(deal, t):
        return NotAuthorized
    return None


def fireable(process: Process, deal: DealState, role: str) -> list[str]:
    """What the table says `role` may fire now, leaving out timer-only transitions."""
    candidates = process.outgoing.get(deal.state, ()) if deal.state else process.initial_transitions
    return [
        t.name
        for t in candidates
        if t.actors != {"system"} and expected_error(process, deal, t, role) is None
    ]


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", factories.builtin_params())
def test_breadth_first_walk_reaches_every_state_of_the_process(name):
    p = processes.builtin(name)
    assert set(factories.find_paths(p)) - {None} == set(p.states)


@pytest.mark.parametrize(("name", "state", "mode", "transition", "role"), table_params())
def test_firing_any_transition_in_any_state_gives_success_or_the_right_error(
    name, state, mode, transition, role
):
    p = processes.builtin(name)
    path = factories.find_paths(p)[state]
    deal, _ = factories.walk(p, path.steps, sale_mode=mode)
    assert deal.state == state
    t = p.transitions[transition]
    now = factories.time_after(path)
    payload = factories.valid_payload(p, deal, t, role)
    untouched = copy.deepcopy(deal)

    assert permissions.permitted_roles(p, deal, t) == expected_roles(deal, t)
    expected = expected_error(p, deal, t, role)
    if expected is None:
        out = engine.fire(p, deal, transition, factories.actor(role), payload, now=now)
        dst = t.destination(role)
        assert out.deal.state == dst
        assert out.from_state == state
        assert out.transition == transition
        assert out.actor_type == role
        assert out.deal.transition_count == deal.transition_count + 1
        first = out.events[0]
        assert (first.type, first.actor_type, first.from_state, first.to_state) == (
            t.event_type(role),
            role,
            state,
            dst,
        )
        if VERSION_ACTIONS & set(t.actions):
            assert out.quote is not None
            assert out.quote.number == len(deal.versions) + 1
        if dst in p.final_states:
            assert out.timers == ()
    else:
        with pytest.raises(DealroomError) as err:
            engine.fire(p, deal, transition, factories.actor(role), payload, now=now)
        assert type(err.value) is expected, f"{err.value.code} {err.value.detail}"
        assert err.value.code == expected.code
    assert deal == untouched, "firing changed the deal it was given"


@pytest.mark.parametrize(("name", "state", "role"), state_role_params())
def test_available_transitions_are_exactly_what_the_actor_can_fire(name, state, role):
    p = processes.builtin(name)
    deal = factories.deal_in(p, state)
    assert permissions.available_transitions(p, deal, role) == fireable(p, deal, role)


@pytest.mark.parametrize(("name", "state"), state_params())
def test_final_state_offers_nothing_and_open_state_offers_someone_a_move(name, state):
    p = processes.builtin(name)
    deal = factories.deal_in(p, state)
    offered = {r: permissions.available_transitions(p, deal, r) for r in factories.ROLES}
    if state in p.final_states:
        assert offered == {r: [] for r in factories.ROLES}
    else:
        assert any(offered.values()) or any(
            t.actors == {"system"} for t in p.outgoing.get(state, ())
        )


@pytest.mark.parametrize(("name", "transition", "state"), into_final_params())
def test_moving_into_a_final_state_leaves_no_quote_version_pending(name, transition, state):
    p = processes.builtin(name)
    t = p.transitions[transition]
    if state is None:
        deal = factories.new_deal(p, sale_mode=min(t.sale_modes, default="negotiable"))
        now = factories.T0
    else:
        path = factories.find_paths(p)[state]
        deal, _ = factories.walk(p, path.steps, sale_mode=path.sale_mode)
        now = factories.time_after(path)
    role = min(expected_roles(deal, t))
    assert expected_error(p, deal, t, role) is None
    out = factories.fire(p, deal, transition, role, now=now)
    left = [v.number for v in out.deal.versions if v.status == "pending"]
    assert not left, f"{transition} ends the deal in {out.deal.state}; {left} still pending"
