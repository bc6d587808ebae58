"""Loading process files: a valid process loads; every defect is named with where and what."""

from __future__ import annotations

import re

import pytest

from dealroom import processes
from dealroom.domain.errors import ProcessError
from dealroom.domain.loader import load_file, load_text

MINI = """\
[process]
name = "mini"
version = 1
title = "Minimal"

[settings]
max_rounds = 3

[states]
open = "Open"
done = "Done"

[[transitions]]
name = "start"
to = "open"
actor = "buyer"

[[transitions]]
name = "finish"
from = "open"
to = "done"
actor = "seller"
actions = ["accept-quote"]
event = "FINISHED"
"""
#: Line of the second `[[transitions]]` header in MINI, where its problems are placed.
FINISH_LINE = 18

LOOPS = """
[[transitions]]
name = "go-a"
from = "open"
to = "loop-a"
actor = "buyer"

[[transitions]]
name = "go-b"
from = "loop-a"
to = "loop-b"
actor = "buyer"

[[transitions]]
name = "back"
from = "loop-b"
to = "loop-a"
actor = "seller"
"""


def load_error(text: str, source: str = "mini.toml") -> ProcessError:
    with pytest.raises(ProcessError) as err:
        load_text(text, source=source)
    return err.value


def test_minimal_valid_process_loads():
    p = load_text(MINI, source="mini.toml")
    assert p.name == "mini"
    assert p.version == 1
    assert p.title == "Minimal"
    assert p.states == ("open", "done")
    assert p.final_states == {"done"}
    assert [t.name for t in p.initial_transitions] == ["start"]
    finish = p.transitions["finish"]
    assert finish.src == {"open"}
    assert finish.dst == "done"
    assert finish.actors == {"seller"}
    assert finish.actions == ("accept-quote",)
    assert finish.event_type("seller") == "FINISHED"
    assert p.transitions["start"].event_type("buyer") == "START"
    assert p.settings.max_rounds == 3
    assert p.source == "mini.toml"


def test_mini_fixture_places_the_finish_transition_where_the_tests_expect():
    assert MINI.splitlines()[FINISH_LINE - 1] == "[[transitions]]"
    assert MINI.splitlines()[FINISH_LINE] == 'name = "finish"'


def test_load_file_reads_a_file_and_names_it_in_errors(tmp_path):
    good = tmp_path / "mini.toml"
    good.write_text(MINI, encoding="utf-8")
    assert load_file(good).name == "mini"
    bad = tmp_path / "broken.toml"
    bad.write_text(MINI.replace('to = "done"', 'to = "nowhere"'), encoding="utf-8")
    with pytest.raises(ProcessError) as err:
        load_file(bad)
    assert err.value.source == str(bad)
    assert str(err.value).startswith(f"{bad}: 1 problem(s)")


def test_missing_file_is_a_process_error_naming_the_file(tmp_path):
    with pytest.raises(ProcessError) as err:
        load_file(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in str(err.value)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            MINI.replace('to = "done"', 'to = "nowhere"'),
            f"line {FINISH_LINE}, transitions[1] (finish).to",
            "unknown state 'nowhere'",
            id="unknown-state-in-to",
        ),
        pytest.param(
            MINI.replace('from = "open"', 'from = ["open", "nowhere"]'),
            f"line {FINISH_LINE}, transitions[1] (finish).from",
            "unknown state 'nowhere'",
            id="unknown-state-in-from",
        ),
        pytest.param(
            MINI.replace('actor = "seller"', 'actor = "admin"'),
            f"line {FINISH_LINE}, transitions[1] (finish).actor",
            "unknown actor 'admin'",
            id="unknown-actor",
        ),
        pytest.param(
            MINI.replace('["accept-quote"]', '["launch-rockets"]'),
            f"line {FINISH_LINE}, transitions[1] (finish).actions",
            "unknown action 'launch-rockets'",
            id="unknown-action",
        ),
        pytest.param(
            MINI + '\n  [[transitions.timers]]\n  at = "entered + 7 days"\n',
            f"line {FINISH_LINE}, transitions[1] (finish).timers[0].at",
            "bad time expression: unexpected '7 days'",
            id="bad-time-expression",
        ),
        pytest.param(
            MINI + '\n  [[transitions.timers]]\n  at = "whenever + P1D"\n',
            f"line {FINISH_LINE}, transitions[1] (finish).timers[0].at",
            "bad time expression: unknown timepoint 'whenever'",
            id="unknown-timepoint",
        ),
        pytest.param(
            MINI
            + '\n[[transitions]]\nname = "finish"\nfrom = "open"\nto = "done"\nactor = "buyer"\n',
            f"line {len(MINI.splitlines()) + 2}, transitions[2] (finish)",
            "duplicate transition name",
            id="duplicate-transition",
        ),
        pytest.param(
            MINI.replace("max_rounds = 3", 'max_rounds = "five"'),
            "line 7, settings.max_rounds",
            "expected a non-negative whole number",
            id="bad-setting-value",
        ),
        pytest.param(
            MINI.replace("max_rounds = 3", 'counter_response_window = "24 hours"'),
            "line 7, settings.counter_response_window",
            "'24 hours' is not an ISO-8601 period",
            id="bad-setting-period",
        ),
        pytest.param(
            MINI.replace("max_rounds = 3", "max_rouns = 3"),
            "line 7, settings.max_rouns",
            "unknown setting",
            id="unknown-setting",
        ),
        pytest.param(
            MINI.replace('done = "Done"', 'done = "Done"\nlimbo = "Nobody gets here"'),
            "state 'limbo'",
            "is not reachable from any initial transition",
            id="unreachable-state",
        ),
        pytest.param(
            MINI.replace(
                'name = "start"\nto = "open"', 'name = "start"\nfrom = "done"\nto = "open"'
            ),
            "process",
            "has no initial transition",
            id="no-initial-transition",
        ),
    ],
)
def test_each_defect_names_the_file_the_place_and_the_problem(text, where, message):
    err = load_error(text)
    assert err.source == "mini.toml"
    rendered = str(err)
    assert rendered.startswith("mini.toml: ")
    assert any(p.where == where and message in p.message for p in err.problems), rendered
    assert f"{where}: " in rendered


def test_state_with_no_way_to_a_final_state_is_named():
    text = MINI.replace('done = "Done"', 'done = "Done"\nloop-a = "A"\nloop-b = "B"') + LOOPS
    err = load_error(text)
    stuck = {p.where for p in err.problems if "no final state can be reached" in p.message}
    assert stuck == {"state 'loop-a'", "state 'loop-b'"}
    assert "open" not in str(err)


def test_toml_syntax_error_says_where_the_syntax_broke():
    err = load_error(MINI.replace("version = 1", "version = "))
    assert len(err.problems) == 1
    problem = err.problems[0]
    assert problem.where == "syntax"
    assert re.search(r"line 3, column \d+", problem.message), problem.message
    assert str(err).startswith("mini.toml: 1 problem(s)")


def test_all_problems_are_reported_at_once():
    text = (
        MINI.replace("max_rounds = 3", "max_rounds = -1")
        .replace('to = "done"', 'to = "nowhere"')
        .replace('actor = "seller"', 'actor = "admin"')
        .replace('["accept-quote"]', '["launch-rockets"]')
        + '\n  [[transitions.timers]]\n  at = "entered +"\n'
    )
    err = load_error(text)
    messages = "\n".join(str(p) for p in err.problems)
    for expected in (
        "settings.max_rounds: expected a non-negative whole number",
        "unknown state 'nowhere'",
        "unknown actor 'admin'",
        "unknown action 'launch-rockets'",
        "bad time expression: 'entered +' ends early",
    ):
        assert expected in messages
    assert len(err.problems) == 5
    assert str(err).startswith("mini.toml: 5 problem(s)")


def test_missing_tables_are_each_reported():
    err = load_error('[process]\nname = "Bad Name"\n')
    wheres = {p.where.split(", ")[-1] for p in err.problems}
    assert {"process.name", "states", "transitions"} <= wheres


def test_initial_transition_cannot_be_turn_taking():
    err = load_error(
        MINI.replace(
            'name = "start"\nto = "open"\nactor = "buyer"',
            'name = "start"\nto = "open"\nactor = "counterparty"',
        )
    )
    assert any("initial transition has no pending quote" in p.message for p in err.problems)


def test_unknown_key_in_a_transition_lists_the_allowed_keys():
    err = load_error(MINI.replace('event = "FINISHED"', 'event = "FINISHED"\ncolour = "red"'))
    assert any(
        p.where == f"line {FINISH_LINE}, transitions[1] (finish).colour"
        and "unknown key (allowed: " in p.message
        for p in err.problems
    )


def test_event_types_must_be_upper_snake_case():
    err = load_error(MINI.replace('event = "FINISHED"', 'event = "finished"'))
    assert any("event type 'finished' must be UPPER_SNAKE_CASE" in p.message for p in err.problems)


def test_notification_naming_an_unknown_transition_is_refused():
    err = load_error(MINI + '\n[[notifications]]\nname = "n"\non = "vanish"\nto = "buyer"\n')
    assert any(
        p.where.endswith("notifications[0] (n).on") and "unknown transition 'vanish'" in p.message
        for p in err.problems
    )


@pytest.mark.parametrize(("name", "count"), [("rfq", 9), ("market", 10), ("offer", 7)])
def test_builtin_process_loads_with_its_transitions(name, count):
    p = processes.builtin(name)
    assert p.name == name
    assert len(p.transitions) == count
    assert p.source == f"dealroom/processes/{name}.toml"


def test_builtin_negotiation_process_has_sharetribes_47_transitions():
    try:
        p = processes.builtin("negotiation")
    except Exception as exc:  # the file is being written elsewhere; absent or unfinished
        pytest.skip(f"negotiation process not available yet: {exc!r}")
    assert len(p.transitions) == 47


def test_unknown_builtin_name_is_a_key_error():
    with pytest.raises(KeyError):
        processes.builtin("barter")
