"""Static checks run whenever a process loads.

Every state reachable from an initial transition; a final state reachable from every
state; transitions that reference known states; valid actors; well-formed time
expressions whose state and transition references exist. Each problem names the state
or transition at fault.
"""

from __future__ import annotations

from dealroom.domain.errors import ProcessProblem
from dealroom.domain.model import ACTORS, Process
from dealroom.domain.timeexpr import Expr


def static_problems(process: Process) -> list[ProcessProblem]:
    problems: list[ProcessProblem] = []
    states = set(process.states)

    for t in process.transitions.values():
        where = f"transition '{t.name}'"
        for s in t.src | t.destinations():
            if s not in states:
                problems.append(ProcessProblem(where, f"references unknown state '{s}'"))
        for a in t.actors:
            if a not in ACTORS:
                problems.append(ProcessProblem(where, f"unknown actor '{a}'"))
        for rule in t.timers:
            problems += _time_refs(process, where, rule.at)
            for name in rule.after:
                if name not in process.transitions:
                    problems.append(
                        ProcessProblem(where, f"timer `after` names unknown transition '{name}'")
                    )
    for n in process.notifications:
        if n.at is not None:
            problems += _time_refs(process, f"notification '{n.name}'", n.at)

    if not process.initial_transitions:
        problems.append(ProcessProblem("process", "has no initial transition (one without `from`)"))
        return problems

    reached = {t.dst for t in process.initial_transitions} | {
        d for t in process.initial_transitions for d in t.dst_by_role.values()
    }
    frontier = list(reached)
    while frontier:
        s = frontier.pop()
        for t in process.outgoing.get(s, ()):
            for d in t.destinations():
                if d not in reached:
                    reached.add(d)
                    frontier.append(d)
    for s in process.states:
        if s not in reached:
            problems.append(
                ProcessProblem(f"state '{s}'", "is not reachable from any initial transition")
            )

    finals = process.final_states
    if not finals:
        problems.append(ProcessProblem("process", "has no final state (one with no way out)"))
    else:
        stuck = [s for s in process.states if s not in process.steps_to_final]
        for s in stuck:
            problems.append(ProcessProblem(f"state '{s}'", "no final state can be reached from it"))
    return problems


def _time_refs(process: Process, where: str, expr: Expr) -> list[ProcessProblem]:
    problems = []
    for kind, arg in expr.references():
        if kind in ("first-entered-state", "last-entered-state") and arg not in process.states:
            problems.append(ProcessProblem(where, f"time expression names unknown state '{arg}'"))
        if kind == "first-transitioned" and arg not in process.transitions:
            problems.append(
                ProcessProblem(where, f"time expression names unknown transition '{arg}'")
            )
    return problems
