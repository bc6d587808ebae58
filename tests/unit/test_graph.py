"""Mermaid drawings of processes."""

from __future__ import annotations

import re

import pytest

from dealroom.domain.loader import load_text
from dealroom.domain.model import Process
from dealroom.processes import BUILTIN, builtin
from dealroom.processes.graph import mermaid

TINY = """
[process]
name = "tiny"
title = "Tiny"

[states]
open = "Open"
end = "A state named like a Mermaid keyword"
sold_out = "Underscore"
sold-out = "Hyphen: the same Mermaid id before de-duplication"

[[transitions]]
name = "start"
to = "open"
actor = ["buyer", "seller"]

[[transitions]]
name = "bump"
from = "open"
to = { buyer = "sold_out", seller = "sold-out", "*" = "open" }
actor = ["buyer", "seller", "operator"]

[[transitions]]
name = "close"
from = ["open", "sold_out", "sold-out"]
to = "end"
actor = "seller"

[[transitions]]
name = "operator-close"
from = "open"
to = "end"
actor = "seller"

[[transitions]]
name = "lapse"
from = ["open", "sold_out"]
to = "end"
actor = "operator"

  [[transitions.timers]]
  state = "open"
  at = "entered + P1D"
"""


def builtins() -> list[Process]:
    out = []
    for name in BUILTIN:
        try:
            out.append(builtin(name))
        except (OSError, KeyError):  # a built-in still being written
            continue
    return out


def edges(text: str) -> list[tuple[str, str, str]]:
    return re.findall(r"^\s+(\S+) --> (\S+)(?: : (.*))?$", text, re.M)


@pytest.fixture(scope="module")
def tiny() -> Process:
    return load_text(TINY, source="tiny.toml")


def test_a_diagram_starts_with_the_state_diagram_header():
    assert mermaid(builtin("rfq")).startswith("stateDiagram-v2\n")


def test_initial_transitions_start_from_the_start_marker():
    text = mermaid(builtin("rfq"))
    assert "    [*] --> quote_requested : request-quote (buyer)\n" in text


def test_every_final_state_leads_to_the_end_marker():
    p = builtin("rfq")
    text = mermaid(p)
    ends = {src for src, dst, _ in edges(text) if dst == "[*]"}
    assert ends == {s.replace("-", "_") for s in p.final_states}


def test_hyphenated_states_get_mermaid_ids_with_their_names_as_labels():
    text = mermaid(builtin("rfq"))
    assert '    state "quote-pending" as quote_pending\n' in text
    assert "quote-pending -->" not in text


def test_labels_are_name_and_actor():
    text = mermaid(builtin("market"))
    assert "    terms_agreed --> close_requested : request-close (seller)\n" in text
    assert "    offer_pending --> offer_pending : counter (counterparty)\n" in text


def test_automatic_transitions_are_marked_with_a_timer():
    text = mermaid(builtin("rfq"))
    assert "    counter_pending --> expired : ⏱ expire (system)\n" in text
    assert all("⏱" not in label for _, _, label in edges(text) if "expire" not in label)


def test_a_destination_by_role_draws_one_edge_per_role():
    text = mermaid(builtin("rfq"))
    assert "    quote_pending --> counter_pending : counter (counterparty: buyer)\n" in text
    assert "    counter_pending --> quote_pending : counter (counterparty: seller)\n" in text


def test_the_default_destination_serves_the_roles_without_their_own(tiny: Process):
    text = mermaid(tiny)
    assert "    open --> open : bump (operator)\n" in text
    assert "    open --> sold_out : bump (buyer)\n" in text


def test_state_ids_never_collide_or_use_mermaid_keywords(tiny: Process):
    text = mermaid(tiny)
    assert '    state "end" as s_end\n' in text
    assert '    state "sold-out" as sold_out_2\n' in text
    assert "    sold_out_2 --> s_end : close (seller)\n" in text


def test_operators_may_fire_operator_transitions_whatever_the_actor(tiny: Process):
    assert "    open --> s_end : operator-close (operator, seller)\n" in mermaid(tiny)


def test_a_timer_marks_only_the_states_it_waits_in(tiny: Process):
    text = mermaid(tiny)
    assert "    open --> s_end : ⏱ lapse (operator, system)\n" in text
    assert "    sold_out --> s_end : lapse (operator, system)\n" in text


@pytest.mark.parametrize("process", builtins(), ids=lambda p: p.name)
def test_every_state_and_transition_of_a_built_in_is_drawn(process: Process):
    text = mermaid(process)
    drawn = edges(text)
    labels = " ".join(label for _, _, label in drawn)
    for name in process.transitions:
        assert f"{name} (" in labels
    ids = {src for src, _, _ in drawn} | {dst for _, dst, _ in drawn}
    for state in process.states:
        assert state.replace("-", "_") in ids


def test_drawing_is_pure_and_repeatable():
    p = builtin("offer")
    assert mermaid(p) == mermaid(p)
