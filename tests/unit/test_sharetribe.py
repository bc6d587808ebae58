"""Sharetribe process.edn import: conversion, errors, the built-in negotiation, and real walks.

The fixtures in tests/fixtures/sharetribe/ are Sharetribe's own example processes; the
default-negotiation process is read from the shared reference documents.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import edn_format
import pytest

from dealroom import processes
from dealroom.domain.actions import is_known_action
from dealroom.domain.engine import fire
from dealroom.domain.errors import (
    MaxRoundsExceeded,
    NotAuthorized,
    ProcessError,
)
from dealroom.domain.loader import from_mapping, load_text
from dealroom.domain.model import Process
from dealroom.domain.state import SYSTEM, Actor, DealState, Listing, Outcome, Payload
from dealroom.processes.sharetribe import (
    EdnFormError,
    edn_time_expression,
    import_edn,
    parse_edn,
    sharetribe_action,
    to_toml,
)

REPO = Path(__file__).parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "sharetribe"
REFERENCE = REPO.parent / "shared" / "reference"
NEGOTIATION_EDN = REFERENCE / "sharetribe" / "default-negotiation.edn"
FIXTURE_NAMES = ("default-purchase", "default-booking", "negotiated-booking")

needs_reference = pytest.mark.skipif(
    not NEGOTIATION_EDN.exists(),
    reason=f"the shared reference documents are not here ({NEGOTIATION_EDN})",
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUYER = Actor("buyer", "b")
SELLER = Actor("seller", "s")
OPERATOR = Actor("operator", "op")
TERMS = {"unit_price": "90.00", "quantity": 1}


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.edn").read_text(encoding="utf-8")


def imported(name: str) -> Process:
    return import_edn(fixture(name), name=name, source=f"{name}.edn")


def new_deal(p: Process, **data: Any) -> DealState:
    return DealState(
        process=p.name,
        listing=Listing(currency="USD", unit_price=Decimal("100")),
        settings=p.settings,
        buyer_id="b",
        seller_id="s",
        data=data,
    )


class Walk:
    """Fires transitions one after another, moving the clock forward as told."""

    def __init__(self, process: Process, deal: DealState, now: datetime = NOW) -> None:
        self.process = process
        self.deal = deal
        self.now = now
        self.last: Outcome | None = None

    def fire(
        self,
        name: str,
        actor: Actor,
        payload: Payload | None = None,
        *,
        after: timedelta = timedelta(minutes=1),
        at: datetime | None = None,
    ) -> Outcome:
        self.now = at if at is not None else self.now + after
        self.last = fire(self.process, self.deal, name, actor, payload, now=self.now)
        self.deal = self.last.deal
        return self.last

    def due(self, name: str) -> datetime:
        """When the pending timer (transition or notification) `name` comes due."""
        assert self.last is not None
        [timer] = [t for t in self.last.timers if t.name == name]
        return timer.due_at

    def timers(self) -> set[str]:
        assert self.last is not None
        return {t.name for t in self.last.timers}


def edn(text: str) -> Any:
    return edn_format.loads(text)


def problems_of(excinfo: pytest.ExceptionInfo[ProcessError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


# --- time expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("{:fn/timepoint [:time/tx-initiated]}", "tx-initiated"),
        (
            "{:fn/timepoint [:time/first-entered-state :state/pending-payment]}",
            "first-entered-state(pending-payment)",
        ),
        (
            "{:fn/timepoint [:time/last-entered-state :state/delivered]}",
            "last-entered-state(delivered)",
        ),
        (
            "{:fn/timepoint [:time/first-transitioned :transition/confirm-payment]}",
            "first-transitioned(confirm-payment)",
        ),
        ("{:fn/timepoint [:time/booking-start]}", "booking-start"),
        ("{:fn/timepoint [:time/booking-end]}", "booking-end"),
        ("{:fn/timepoint [:time/booking-display-start]}", "booking-display-start"),
        ("{:fn/timepoint [:time/booking-display-end]}", "booking-display-end"),
        (
            "{:fn/plus [{:fn/timepoint [:time/last-entered-state :state/delivered]}"
            ' {:fn/period ["P14D"]}]}',
            "last-entered-state(delivered) + P14D",
        ),
        (
            '{:fn/minus [{:fn/timepoint [:time/booking-start]} {:fn/period ["PT1H"]}]}',
            "booking-start - PT1H",
        ),
        (
            "{:fn/plus [{:fn/timepoint [:time/tx-initiated]}"
            ' {:fn/period ["P1D"]} {:fn/period ["PT12H"]}]}',
            "tx-initiated + P1D + PT12H",
        ),
        (
            "{:fn/min [{:fn/plus [{:fn/timepoint [:time/first-entered-state :state/a]}"
            ' {:fn/period ["P6D"]}]}'
            ' {:fn/plus [{:fn/timepoint [:time/booking-end]} {:fn/period ["P1D"]}]}]}',
            "min(first-entered-state(a) + P6D, booking-end + P1D)",
        ),
        (
            "{:fn/ignore-if-past [{:fn/minus [{:fn/timepoint [:time/booking-start]}"
            ' {:fn/period ["P1D"]}]}]}',
            "ignore-if-past(booking-start - P1D)",
        ),
        (
            "{:fn/plus [{:fn/min [{:fn/timepoint [:time/booking-start]}"
            ' {:fn/timepoint [:time/tx-initiated]}]} {:fn/period ["P1D"]}]}',
            "min(booking-start, tx-initiated) + P1D",
        ),
    ],
)
def test_each_time_expression_form_converts_to_our_syntax(form: str, expected: str) -> None:
    assert edn_time_expression(edn(form)) == expected


def test_a_converted_time_expression_means_what_sharetribe_means() -> None:
    # min(booking-start - 1 day, entered + 2 days): the earlier of the two, nested as written.
    p = import_edn(
        """{:format :v3
            :transitions
            [{:name :transition/book :to :state/booked :actor :actor.role/customer}
             {:name :transition/remind :from :state/booked :to :state/done
              :at {:fn/min [{:fn/minus [{:fn/timepoint [:time/booking-start]}
                                        {:fn/period ["P1D"]}]}
                            {:fn/plus [{:fn/timepoint [:time/first-entered-state :state/booked]}
                                       {:fn/period ["P2D"]}]}]}}]}""",
        name="mini",
    )
    soon = {"start": (NOW + timedelta(days=1)).isoformat(), "end": "2026-03-10T00:00:00+00:00"}
    later = {"start": (NOW + timedelta(days=10)).isoformat(), "end": "2026-03-20T00:00:00+00:00"}
    assert fire(p, new_deal(p, booking=soon), "book", BUYER, now=NOW).timers[0].due_at == NOW
    assert fire(p, new_deal(p, booking=later), "book", BUYER, now=NOW).timers[0].due_at == (
        NOW + timedelta(days=2)
    )


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ("{:fn/later [1]}", "unknown time function :fn/later"),
        ("{:fn/timepoint [:time/last-transitioned :transition/x]}", "unknown timepoint"),
        ("{:fn/timepoint [:time/first-entered-state]}", "takes one :state/… argument"),
        ("{:fn/timepoint [:time/first-entered-state :transition/x]}", "expected a state name"),
        ("{:fn/timepoint [:time/booking-end :state/x]}", ":time/booking-end takes no argument"),
        ("{:fn/plus [{:fn/timepoint [:time/tx-initiated]}]}", "at least one {:fn/period"),
        (
            '{:fn/plus [{:fn/timepoint [:time/tx-initiated]} {:fn/period ["14 days"]}]}',
            "'14 days' is not an ISO-8601 period",
        ),
        ('{:fn/plus [{:fn/timepoint [:time/tx-initiated]} "P1D"]}', "expected {:fn/period"),
        ('{:fn/period ["P1D"]}', ":fn/period is a duration, not a time"),
        ("{:fn/min []}", ":fn/min needs at least one"),
        (
            "{:fn/ignore-if-past [{:fn/timepoint [:time/booking-start]}"
            " {:fn/timepoint [:time/booking-end]}]}",
            "exactly one time expression",
        ),
        ("{:fn/timepoint :time/tx-initiated}", "takes a vector of arguments"),
        (":time/tx-initiated", "expected a time expression"),
        ('"2026-01-01"', "expected a time expression"),
    ],
)
def test_time_expressions_we_cannot_convert_are_refused_with_a_reason(
    form: str, message: str
) -> None:
    with pytest.raises(EdnFormError) as excinfo:
        edn_time_expression(edn(form))
    assert message in str(excinfo.value)


def test_a_bad_time_expression_names_its_transition() -> None:
    text = """{:format :v3
      :transitions [{:name :transition/start :to :state/a :actor :actor.role/customer}
                    {:name :transition/expire :from :state/a :to :state/b
                     :at {:fn/plus [{:fn/timepoint [:time/soon]} {:fn/period ["P1D"]}]}}]}"""
    with pytest.raises(ProcessError) as excinfo:
        parse_edn(text, "bad.edn")
    assert excinfo.value.source == "bad.edn"
    [problem] = problems_of(excinfo)
    assert problem.startswith("transitions[1] (expire).:at: unknown timepoint :time/soon")


def test_a_time_expression_naming_an_unknown_state_fails_the_static_checks() -> None:
    text = """{:format :v3
      :transitions [{:name :transition/start :to :state/a :actor :actor.role/customer}
                    {:name :transition/expire :from :state/a :to :state/b
                     :at {:fn/timepoint [:time/first-entered-state :state/nowhere]}}]}"""
    with pytest.raises(ProcessError) as excinfo:
        import_edn(text, name="mini", source="mini.edn")
    assert "transition 'expire': time expression names unknown state 'nowhere'" in str(
        excinfo.value
    )


# --- actions, actors, structure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sharetribe", "ours"),
    [
        ("privileged-set-line-items", "set-line-items"),
        ("set-line-items", "set-line-items"),
        ("update-protected-data", "update-protected-data"),
        ("privileged-update-protected-data", "update-protected-data"),
        ("privileged-update-metadata", "update-metadata"),
        ("update-metadata", "update-metadata"),
        ("stripe-create-payment-intent", "payment:stripe-create-payment-intent"),
        ("stripe-refund-payment", "payment:stripe-refund-payment"),
        ("calculate-full-refund", "payment:calculate-full-refund"),
        ("calculate-tx-unit-total-price", "payment:calculate-tx-unit-total-price"),
        ("post-review-by-customer", "post-review-by-buyer"),
        ("post-review-by-provider", "post-review-by-seller"),
        ("publish-reviews", "publish-reviews"),
        ("create-pending-booking", "booking:create-pending-booking"),
        ("create-booking", "booking:create-booking"),
        ("accept-booking", "booking:accept-booking"),
        ("decline-booking", "booking:decline-booking"),
        ("cancel-booking", "booking:cancel-booking"),
        ("update-booking", "booking:update-booking"),
        ("create-pending-stock-reservation", "stock:create-pending-stock-reservation"),
        ("cancel-stock-reservation", "stock:cancel-stock-reservation"),
        ("reveal-customer-protected-data", "effect:reveal-customer-protected-data"),
        ("fail", "effect:fail"),
    ],
)
def test_sharetribe_actions_map_to_ours(sharetribe: str, ours: str) -> None:
    assert sharetribe_action(sharetribe) == ours
    assert is_known_action(ours)


def test_names_roles_timers_and_notifications_convert() -> None:
    m = parse_edn(
        """{:format :v3
           :transitions
           [{:name :transition/request :to :state/pending :actor :actor.role/customer
             :privileged? true
             :actions [{:name :action/create-pending-booking :config {:type :time}}
                       {:name :action/privileged-set-line-items}]}
            {:name :transition/accept :from :state/pending :to :state/accepted
             :actor :actor.role/provider :actions []}
            {:name :transition/operator-accept :from :state/pending :to :state/accepted
             :actor :actor.role/operator}
            {:name :transition/expire :from :state/pending :to :state/expired
             :at {:fn/plus [{:fn/timepoint [:time/first-entered-state :state/pending]}
                            {:fn/period ["P6D"]}]}
             :actions [{:name :action/decline-booking}]}]
           :notifications
           [{:name :notification/new-request :on :transition/request
             :to :actor.role/provider :template :booking-new-request}
            {:name :notification/reminder :on :transition/request :to :actor.role/customer
             :template :reminder
             :at {:fn/plus [{:fn/timepoint [:time/first-entered-state :state/pending]}
                            {:fn/period ["P1D"]}]}}]}""",
        "somewhere/my-booking/process.edn",
    )
    assert m["process"]["name"] == "my-booking"
    assert m["states"] == {
        "pending": "Sharetribe state pending",
        "accepted": "Sharetribe state accepted",
        "expired": "Sharetribe state expired",
    }
    assert m["transitions"] == [
        {
            "name": "request",
            "to": "pending",
            "actor": "buyer",
            "privileged": True,
            "actions": ["booking:create-pending-booking", "set-line-items"],
        },
        {"name": "accept", "from": "pending", "to": "accepted", "actor": "seller", "actions": []},
        {
            "name": "operator-accept",
            "from": "pending",
            "to": "accepted",
            "actor": "operator",
            "actions": [],
        },
        {
            "name": "expire",
            "from": "pending",
            "to": "expired",
            "actor": "system",
            "actions": ["booking:decline-booking"],
            "timers": [{"state": "pending", "at": "first-entered-state(pending) + P6D"}],
        },
    ]
    assert m["notifications"] == [
        {
            "name": "new-request",
            "on": ["request"],
            "to": ["seller"],
            "template": "booking-new-request",
        },
        {
            "name": "reminder",
            "on": ["request"],
            "to": ["buyer"],
            "template": "reminder",
            "at": "first-entered-state(pending) + P1D",
        },
    ]
    assert "settings" not in m  # counter rules stay off; the quota is the default 100
    p = from_mapping(m)
    assert p.settings.counter_rules is False
    assert p.settings.transition_quota == 100
    assert p.transitions["expire"].actors == {"system"}
    assert p.transitions["request"].event_type("buyer") == "REQUEST"


def test_an_older_multi_actor_transition_keeps_every_role() -> None:
    m = parse_edn(
        """{:format :v3 :transitions
            [{:name :transition/start :to :state/a
              :actor #{:actor.role/customer :actor.role/provider}}]}""",
        "multi.edn",
    )
    assert sorted(m["transitions"][0]["actor"]) == ["buyer", "seller"]


# --- bad input ----------------------------------------------------------------------------------

VALID_TRANSITION = "{:name :transition/start :to :state/a :actor :actor.role/customer}"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("{:format :v3 :transitions [", "syntax", "not valid EDN"),
        ("#unknown/tag {:format :v3}", "syntax", "not valid EDN"),
        ("[1 2 3]", "syntax", "expected one map"),
        ("{:format :v3} {:format :v3}", "syntax", "found 2 forms"),
        ("", "syntax", "found nothing"),
        (f"{{:format :v2 :transitions [{VALID_TRANSITION}]}}", ":format", "only :v3"),
        (f"{{:transitions [{VALID_TRANSITION}]}}", ":format", "missing"),
        ("{:format :v3 :transitions []}", ":transitions", "missing"),
        (
            f"{{:format :v3 :states [] :transitions [{VALID_TRANSITION}]}}",
            ":states",
            "unknown key (allowed: :format, :transitions, :notifications)",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/customer :when :soon}]}",
            "transitions[0] (start).:when",
            "unknown key",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/admin}]}",
            "transitions[0] (start).:actor",
            "unknown role :actor.role/admin",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a}]}",
            "transitions[0] (start)",
            "needs an :actor",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/customer :at {:fn/timepoint [:time/tx-initiated]}}]}",
            "transitions[0] (start)",
            "has both :actor and :at",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :at {:fn/timepoint [:time/tx-initiated]}}]}",
            "transitions[0] (start).:at",
            "needs a :from state",
        ),
        (
            "{:format :v3 :transitions [{:name :start :to :state/a :actor :actor.role/customer}]}",
            "transitions[0].:name",
            "expected a :transition/…, found :start",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :actor :actor.role/customer}]}",
            "transitions[0] (start).:to",
            "missing",
        ),
        (
            '{:format :v3 :transitions [{:name :transition/start :to "a"'
            " :actor :actor.role/customer}]}",
            "transitions[0] (start).:to",
            'expected a :state/…, found "a"',
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/customer :privileged? :yes}]}",
            "transitions[0] (start).:privileged?",
            "must be true or false",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/customer :actions [{:name :action/x :params {}}]}]}",
            "transitions[0] (start).:actions",
            "unknown key :params",
        ),
        (
            "{:format :v3 :transitions [{:name :transition/start :to :state/a"
            " :actor :actor.role/customer :actions [:action/x]}]}",
            "transitions[0] (start).:actions",
            "must be a map",
        ),
        (
            f"{{:format :v3 :transitions [{VALID_TRANSITION}]"
            " :notifications [{:name :notification/n :on :transition/start"
            " :to :actor.role/customer}]}",
            "notifications[0] (n).:template",
            "missing",
        ),
        (
            f"{{:format :v3 :transitions [{VALID_TRANSITION}]"
            " :notifications [{:name :notification/n :on :transition/start"
            " :to :actor.role/everyone :template :t}]}",
            "notifications[0] (n).:to",
            "unknown role",
        ),
        (
            f"{{:format :v3 :transitions [{VALID_TRANSITION}]"
            " :notifications [{:name :notification/n :on :transition/start"
            " :to :actor.role/customer :template :t}"
            " {:name :notification/n :on :transition/start"
            " :to :actor.role/customer :template :t}]}",
            "notification 'n'",
            "duplicate notification name",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_source_and_the_place(
    text: str, where: str, message: str
) -> None:
    with pytest.raises(ProcessError) as excinfo:
        parse_edn(text, "their/process.edn")
    assert excinfo.value.source == "their/process.edn"
    found = [(p.where, p.message) for p in excinfo.value.problems]
    assert any(w == where and message in m for w, m in found), found
    assert str(excinfo.value).startswith("their/process.edn: ")


def test_every_problem_is_reported_at_once() -> None:
    text = """{:format :v3 :transitions
      [{:name :transition/a :to :state/x :actor :actor.role/nobody}
       {:name :transition/b :from :state/x :to :state/y}]}"""
    with pytest.raises(ProcessError) as excinfo:
        parse_edn(text, "two.edn")
    assert [p.where for p in excinfo.value.problems] == [
        "transitions[0] (a).:actor",
        "transitions[1] (b)",
    ]


def test_defects_the_loader_finds_name_the_transition_and_the_source() -> None:
    text = """{:format :v3 :transitions
      [{:name :transition/start :to :state/a :actor :actor.role/customer}
       {:name :transition/start :from :state/a :to :state/b :actor :actor.role/provider}]
      :notifications [{:name :notification/n :on :transition/finish
                       :to :actor.role/customer :template :t}]}"""
    with pytest.raises(ProcessError) as excinfo:
        import_edn(text, name="dup", source="dup.edn")
    message = str(excinfo.value)
    assert message.startswith("dup.edn: ")
    assert "transitions[1] (start): duplicate transition name" in message
    assert "notifications[0] (n).on: unknown transition 'finish'" in message


def test_an_unreachable_state_fails_the_static_checks_by_name() -> None:
    text = """{:format :v3 :transitions
      [{:name :transition/start :to :state/a :actor :actor.role/customer}
       {:name :transition/finish :from :state/a :to :state/done :actor :actor.role/provider}
       {:name :transition/orphan :from :state/limbo :to :state/done
        :actor :actor.role/provider}]}"""
    with pytest.raises(ProcessError) as excinfo:
        import_edn(text, name="orphan", source="orphan.edn")
    assert "state 'limbo': is not reachable from any initial transition" in str(excinfo.value)


# --- TOML output ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_an_imported_process_round_trips_through_toml(name: str) -> None:
    mapping = parse_edn(fixture(name), f"{name}.edn", name=name)
    text = to_toml(mapping, header=f"Imported from {name}.edn")
    assert text.startswith(f"# Imported from {name}.edn\n")
    assert tomllib.loads(text) == mapping
    assert "[[transitions]]" in text
    assert '\nactions = ["' in text  # short lists stay on one line
    again = load_text(text, source=f"{name}.toml")
    original = from_mapping(mapping)
    assert again.transitions == original.transitions
    assert again.states == original.states
    assert again.notifications == original.notifications


@pytest.mark.parametrize("name", ["rfq", "market", "offer", "negotiation"])
def test_our_own_process_files_round_trip_through_toml(name: str) -> None:
    raw = tomllib.loads(processes.builtin_text(name))
    text = to_toml(raw)
    assert tomllib.loads(text) == raw
    assert load_text(text).transitions == processes.builtin(name).transitions


# --- the built-in negotiation process ------------------------------------------------------


#: What the built-in negotiation adds to Sharetribe's actions: quote-version statuses.
QUOTE_REPLACEMENTS = {
    "customer-withdraw-counter-offer": ("restore-previous", "update-metadata"),
    "provider-reject-counter-offer": ("restore-previous", "update-metadata"),
}
QUOTE_ADDITIONS: dict[str, str | tuple[str, ...]] = {
    "confirm-payment": ("accept-quote", "create-order"),
    "customer-reject-offer": "reject-quote",
    "operator-reject-offer": "reject-quote",
    "customer-reject-from-update-pending": "reject-quote",
    "operator-reject-from-customer-counter-offer": "reject-quote",
    "provider-withdraw-offer": "withdraw-quote",
    "provider-withdraw-from-update-pending": "withdraw-quote",
    "expire-payment": "expire-quote",
}


@needs_reference
def test_sharetribe_default_negotiation_imports_with_all_47_transitions() -> None:
    p = import_edn(NEGOTIATION_EDN.read_text(encoding="utf-8"), name="negotiation")
    assert len(p.transitions) == 47
    assert len(p.states) == 17
    assert p.final_states == {
        "request-rejected",
        "offer-rejected",
        "payment-expired",
        "canceled",
        "reviewed",
    }
    assert {t.name for t in p.initial_transitions} == {"make-offer", "inquire", "request-quote"}


@needs_reference
def test_builtin_negotiation_is_sharetribe_default_negotiation() -> None:
    sharetribe = import_edn(NEGOTIATION_EDN.read_text(encoding="utf-8"), name="negotiation")
    ours = processes.builtin("negotiation")
    assert list(ours.transitions) == list(sharetribe.transitions)
    assert set(ours.states) == set(sharetribe.states)
    for name, theirs in sharetribe.transitions.items():
        mine = ours.transitions[name]
        assert (mine.src, mine.dst, mine.actors) == (theirs.src, theirs.dst, theirs.actors), name
        assert mine.privileged == theirs.privileged, name
        assert mine.timers == theirs.timers, name
        extra = QUOTE_ADDITIONS.get(name, ())
        extra = (extra,) if isinstance(extra, str) else tuple(extra)
        if name in QUOTE_REPLACEMENTS:
            assert mine.actions == QUOTE_REPLACEMENTS[name], name
        else:
            assert mine.actions == theirs.actions + extra, name
    assert ours.notifications == sharetribe.notifications
    assert ours.settings == sharetribe.settings
    assert ours.settings.counter_rules is False


def test_builtin_negotiation_loads_and_names_its_parties() -> None:
    p = processes.builtin("negotiation")
    assert len(p.transitions) == 47
    assert p.transitions["make-offer"].actors == {"seller"}
    assert p.transitions["request-quote"].actors == {"buyer"}
    assert p.transitions["operator-reject-offer"].actors == {"operator"}
    assert p.transitions["expire-payment"].actors == {"system"}
    assert p.transitions["confirm-payment"].actions == (
        "payment:stripe-confirm-payment-intent",
        "payment:stripe-capture-payment-intent",
        "accept-quote",
        "create-order",
    )


def test_negotiation_walk_from_offer_to_reviews() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))

    o = w.fire("make-offer", SELLER, Payload(terms=TERMS))
    assert o.to_state == "offer-pending"
    assert o.quote is not None
    assert o.quote.created_by_role == "seller"
    assert o.notifications[0].to == ("buyer",)

    o = w.fire("customer-make-counter-offer", BUYER, Payload(terms={**TERMS, "unit_price": "80"}))
    assert o.to_state == "customer-offer-pending"
    assert o.quote is not None
    assert (o.quote.number, o.quote.created_by_role) == (2, "buyer")
    assert o.status_changes == ((1, "countered"),)

    assert w.fire("provider-accept-counter-offer", SELLER).to_state == "offer-pending"

    o = w.fire("request-payment-to-accept-offer", BUYER)
    assert o.to_state == "pending-payment"
    assert [e.name for e in o.effects] == ["payment:stripe-create-payment-intent"]
    assert w.due("expire-payment") == w.now + timedelta(minutes=15)

    o = w.fire("confirm-payment", BUYER, after=timedelta(minutes=5))
    assert o.to_state == "offer-accepted"
    assert o.status_changes == ((2, "accepted"),)
    assert w.deal.accepted is not None
    assert w.deal.accepted.terms.unit_price == Decimal("80")
    assert [e.name for e in o.effects] == [
        "payment:stripe-confirm-payment-intent",
        "payment:stripe-capture-payment-intent",
        "create-order",
    ]
    assert o.effects[-1].params["total"] == "80.00"
    assert w.due("auto-cancel") == w.now + timedelta(days=75)
    assert w.due("deliver-reminder") == w.now + timedelta(days=72)
    assert {n.name for n in o.notifications} == {"order-receipt", "accepted-offer"}

    delivered_at = w.now + timedelta(days=3)
    w.fire("deliver", SELLER, at=delivered_at)
    assert w.due("auto-accept-deliverable") == delivered_at + timedelta(days=14)

    completed_at = w.now + timedelta(days=2)
    o = w.fire("accept-deliverable", BUYER, at=completed_at)
    assert o.to_state == "completed"
    assert [e.name for e in o.effects] == ["payment:stripe-create-payout"]
    assert w.due("expire-review-period") == completed_at + timedelta(days=7)

    o = w.fire("review-1-by-customer", BUYER, Payload(data={"reviewRating": 5}))
    assert o.to_state == "reviewed-by-customer"
    assert w.due("expire-provider-review-period") == completed_at + timedelta(days=7)

    o = w.fire("review-2-by-provider", SELLER, Payload(data={"reviewRating": 4}))
    assert o.to_state == "reviewed"
    assert o.timers == ()
    assert {k: v["published"] for k, v in w.deal.data["reviews"].items()} == {
        "buyer": True,
        "seller": True,
    }
    assert w.deal.transition_count == 9


def test_negotiation_auto_accept_counts_from_the_last_delivery() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("make-offer", SELLER, Payload(terms=TERMS))
    w.fire("request-payment-to-accept-offer", BUYER)
    w.fire("confirm-payment", BUYER)
    paid_at = w.now
    first = w.now + timedelta(days=1)
    w.fire("deliver", SELLER, at=first)
    assert w.due("auto-accept-deliverable") == first + timedelta(days=14)
    assert w.due("accept-order-reminder") == first + timedelta(days=5)

    o = w.fire("request-changes", BUYER, after=timedelta(days=2))
    assert o.to_state == "changes-requested"
    # Still measured from the payment, however many change rounds there were.
    assert w.due("auto-cancel-from-changes-requested") == paid_at + timedelta(days=75)

    again = w.now + timedelta(days=4)
    w.fire("deliver-changes", SELLER, at=again)
    assert w.due("auto-accept-deliverable") == again + timedelta(days=14)

    o = w.fire("auto-accept-deliverable", SYSTEM, at=again + timedelta(days=14))
    assert o.to_state == "completed"
    assert o.actor_type == "system"


def test_negotiation_regular_flow_and_operator_moves() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("request-quote", BUYER, Payload(data={"protectedData": {"brief": "50 chairs"}}))
    assert w.deal.data["protected_data"] == {"brief": "50 chairs"}
    w.fire("make-offer-from-request", SELLER, Payload(terms=TERMS))
    w.fire("update-offer", SELLER, Payload(terms={**TERMS, "unit_price": "85"}))
    assert w.deal.state == "update-pending"
    assert [v.status for v in w.deal.versions] == ["superseded", "pending"]
    w.fire("operator-accept-update", OPERATOR)
    assert w.deal.state == "offer-pending"
    with pytest.raises(NotAuthorized):
        fire(p, w.deal, "operator-reject-offer", BUYER, now=w.now)
    o = w.fire("operator-reject-offer", OPERATOR)
    assert o.to_state == "offer-rejected"
    assert o.status_changes == ((2, "rejected"),)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (["customer-reject-offer"], "rejected"),
        (["provider-withdraw-offer"], "withdrawn"),
        (["update-offer", "provider-withdraw-from-update-pending"], "withdrawn"),
        (["request-payment-to-accept-offer", "expire-payment"], "expired"),
    ],
)
def test_negotiation_ending_without_payment_closes_the_pending_version(
    path: list[str], status: str
) -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("make-offer", SELLER, Payload(terms=TERMS))
    actors = {"buyer": BUYER, "seller": SELLER, "system": SYSTEM}
    for name in path:
        [role] = p.transitions[name].actors
        payload = Payload(terms=TERMS) if name == "update-offer" else None
        w.fire(name, actors[role], payload, after=timedelta(minutes=20))
    assert w.deal.state in p.final_states
    assert w.deal.pending is None
    assert w.deal.versions[-1].status == status


def test_negotiation_refuses_a_counter_that_would_exhaust_the_quota() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("make-offer", SELLER, Payload(terms=TERMS))
    w.deal = replace(w.deal, transition_count=99)
    with pytest.raises(MaxRoundsExceeded):
        w.fire("customer-make-counter-offer", BUYER, Payload(terms=TERMS))
    # Leaving the loop is still possible.
    assert w.fire("request-payment-to-accept-offer", BUYER).to_state == "pending-payment"


def test_negotiation_offers_do_not_lapse_like_sharetribe_offers() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("make-offer", SELLER, Payload(terms=TERMS))
    w.fire("request-payment-to-accept-offer", BUYER, after=timedelta(days=8))
    assert w.fire("confirm-payment", BUYER).to_state == "offer-accepted"


def test_withdrawing_a_counter_puts_the_sellers_offer_back_on_the_table() -> None:
    p = processes.builtin("negotiation")
    w = Walk(p, new_deal(p))
    w.fire("make-offer", SELLER, Payload(terms=TERMS))
    w.fire("customer-make-counter-offer", BUYER, Payload(terms={**TERMS, "unit_price": "70"}))
    w.fire("customer-withdraw-counter-offer", BUYER)
    pending = w.deal.pending
    assert pending is not None
    assert (pending.created_by_role, pending.terms.unit_price) == ("seller", Decimal("90.00"))


# --- Sharetribe's other processes ---------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_each_sharetribe_example_imports_and_passes_the_checks(name: str) -> None:
    p = imported(name)
    assert p.name == name
    assert p.final_states
    assert all(s in p.steps_to_final for s in p.states)
    for t in p.transitions.values():
        assert all(is_known_action(a) for a in t.actions), t.name
        assert t.actors, t.name


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("default-purchase", (25, 12, 30)),
        ("default-booking", (20, 12, 18)),
        ("negotiated-booking", (24, 13, 18)),
    ],
)
def test_each_sharetribe_example_keeps_every_transition_state_and_notification(
    name: str, counts: tuple[int, int, int]
) -> None:
    p = imported(name)
    assert (len(p.transitions), len(p.states), len(p.notifications)) == counts


def test_purchase_walk_from_payment_to_reviews() -> None:
    p = imported("default-purchase")
    w = Walk(p, new_deal(p))
    o = w.fire("request-payment", BUYER, Payload(terms=TERMS))
    assert o.to_state == "pending-payment"
    assert [e.name for e in o.effects] == [
        "stock:create-pending-stock-reservation",
        "payment:stripe-create-payment-intent",
    ]
    assert o.quote is not None
    assert o.quote.terms.unit_price == Decimal("90.00")
    assert w.due("expire-payment") == w.now + timedelta(minutes=15)

    o = w.fire("confirm-payment", BUYER)
    assert o.to_state == "purchased"
    assert w.due("auto-cancel") == w.now + timedelta(days=14)
    assert w.due("order-receipt") == w.now + timedelta(minutes=15)
    assert w.due("shipping-reminder") == w.now + timedelta(days=3)
    assert [n.name for n in o.notifications] == ["purchase-new-order"]

    w.fire("mark-delivered", SELLER, after=timedelta(days=2))
    assert w.due("auto-mark-received") == w.now + timedelta(days=14)
    assert w.due("purchase-mark-order-received-reminder") == w.now + timedelta(days=12)

    w.fire("mark-received", BUYER, after=timedelta(days=1))
    received_at = w.now
    assert w.due("auto-complete") == received_at  # at once: first-entered-state(received)

    o = w.fire("auto-complete", SYSTEM, at=received_at)
    assert o.to_state == "completed"
    assert w.due("expire-review-period") == received_at + timedelta(days=7)
    w.fire("review-1-by-provider", SELLER, Payload(data={"reviewRating": 5}))
    o = w.fire("expire-customer-review-period", SYSTEM, at=received_at + timedelta(days=7))
    assert o.to_state == "reviewed"
    assert w.deal.data["reviews"]["seller"]["published"] is True


def test_purchase_dispute_is_settled_by_the_operator() -> None:
    p = imported("default-purchase")
    w = Walk(p, new_deal(p))
    w.fire("request-payment", BUYER, Payload(terms=TERMS))
    w.fire("confirm-payment", BUYER)
    w.fire("operator-mark-delivered", OPERATOR)
    w.fire("dispute", BUYER, Payload(data={"protectedData": {"reason": "broken"}}))
    assert w.deal.state == "disputed"
    assert w.due("auto-cancel-from-disputed") == w.now + timedelta(days=60)
    with pytest.raises(NotAuthorized):
        fire(p, w.deal, "mark-received-from-disputed", SELLER, now=w.now)
    assert w.fire("mark-received-from-disputed", OPERATOR).to_state == "received"


BOOKING = {"start": "2026-03-04T10:00:00+00:00", "end": "2026-03-06T10:00:00+00:00"}
BOOKING_START = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
BOOKING_END = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)


def test_booking_walk_reads_the_booking_times_from_the_deal() -> None:
    p = imported("default-booking")
    w = Walk(p, new_deal(p, booking=BOOKING))
    o = w.fire("request-payment", BUYER, Payload(terms=TERMS, data={"booking": BOOKING}))
    assert [e.name for e in o.effects] == [
        "booking:create-pending-booking",
        "payment:stripe-create-payment-intent",
    ]
    assert w.due("expire-payment") == w.now + timedelta(minutes=15)

    o = w.fire("confirm-payment", BUYER)
    assert o.to_state == "preauthorized"
    # min(entered + 6 days, booking start + 1 day, booking end): the booking start wins.
    assert w.due("expire") == BOOKING_START + timedelta(days=1)

    o = w.fire("accept", SELLER)
    assert [e.name for e in o.effects] == [
        "booking:accept-booking",
        "payment:stripe-capture-payment-intent",
    ]
    assert w.due("complete") == BOOKING_END + timedelta(days=2)

    o = w.fire("complete", SYSTEM, at=BOOKING_END + timedelta(days=2))
    assert o.to_state == "delivered"
    assert {n.name for n in o.notifications} == {
        "booking-money-paid",
        "review-period-start-provider",
        "review-period-start-customer",
    }
    assert w.due("expire-review-period") == BOOKING_END + timedelta(days=7)
    w.fire("review-1-by-customer", BUYER, Payload(data={"reviewRating": 5}))
    assert w.fire("review-2-by-provider", SELLER, Payload(data={"reviewRating": 5})).to_state == (
        "reviewed"
    )


def test_booking_expiry_waits_six_days_when_the_booking_is_far_off() -> None:
    p = imported("default-booking")
    far = {"start": "2026-06-01T10:00:00+00:00", "end": "2026-06-03T10:00:00+00:00"}
    w = Walk(p, new_deal(p, booking=far))
    w.fire("request-payment", BUYER, Payload(terms=TERMS))
    w.fire("confirm-payment", BUYER)
    assert w.due("expire") == w.now + timedelta(days=6)
    assert w.fire("expire", SYSTEM, after=timedelta(days=6)).to_state == "expired"


def test_negotiated_booking_walk_with_offers_both_ways() -> None:
    p = imported("negotiated-booking")
    w = Walk(p, new_deal(p, booking=BOOKING))
    o = w.fire("request", BUYER, Payload(terms={**TERMS, "unit_price": "70"}))
    assert o.to_state == "customer-made-offer"
    # min(first entry + 6 days, booking end + 1 day): the booking ends sooner.
    assert w.due("customer-offer-expired") == BOOKING_END + timedelta(days=1)

    o = w.fire("provider-offer", SELLER, Payload(terms={**TERMS, "unit_price": "85"}))
    assert o.to_state == "provider-made-offer"
    assert o.quote is not None
    assert o.quote.created_by_role == "seller"
    o = w.fire("customer-offer", BUYER, Payload(terms={**TERMS, "unit_price": "80"}))
    assert o.to_state == "customer-made-offer"
    assert [v.status for v in w.deal.versions] == ["countered", "countered", "pending"]

    o = w.fire("provider-accept", SELLER)
    assert o.to_state == "pending-payment"
    assert w.due("expire") == BOOKING_END + timedelta(days=1)

    o = w.fire("pay", BUYER)
    assert o.to_state == "pending-confirmation"
    assert w.due("expire-payment") == w.now + timedelta(minutes=15)

    o = w.fire("confirm-capture-payment", BUYER)
    assert o.to_state == "accepted"
    assert [e.name for e in o.effects] == [
        "payment:stripe-confirm-payment-intent",
        "booking:accept-booking",
        "payment:stripe-capture-payment-intent",
    ]
    assert w.due("complete") == BOOKING_END

    assert w.fire("complete", SYSTEM, at=BOOKING_END).to_state == "delivered"
    w.fire("review-1-by-provider", SELLER, Payload(data={"reviewRating": 4}))
    assert w.due("expire-customer-review-period") == BOOKING_END + timedelta(days=7)
    assert w.fire("review-2-by-customer", BUYER, Payload(data={"reviewRating": 5})).to_state == (
        "reviewed"
    )


def test_negotiated_booking_without_a_booking_still_expires_by_the_clock() -> None:
    p = imported("negotiated-booking")
    w = Walk(p, new_deal(p))
    w.fire("request", BUYER, Payload(terms=TERMS))
    assert w.due("customer-offer-expired") == w.now + timedelta(days=6)
    o = w.fire("customer-offer-expired", SYSTEM, after=timedelta(days=6))
    assert o.to_state == "declined"
    assert [e.name for e in o.effects] == [
        "booking:decline-booking",
        "payment:calculate-full-refund",
    ]
