"""Drawing a process as a Mermaid `stateDiagram-v2`.

Initial transitions come from `[*]`, final states go to `[*]`. Each edge is labelled
"name (actor)"; a transition whose destination depends on the firing party's role gets
one edge per destination, labelled with that role; an edge that a timer fires is marked
with ⏱. Pure: a process in, text out.
"""

from __future__ import annotations

import re

from dealroom.domain.model import PARTIES, Process, Transition

#: Words Mermaid reads as keywords where a state id is expected.
_RESERVED = frozenset(
    {"end", "state", "note", "direction", "class", "classdef", "style", "click", "default"}
)
TIMER_MARK = "⏱"


def _state_ids(states: tuple[str, ...]) -> dict[str, str]:
    """Mermaid ids: hyphens are not allowed in them, so `quote-pending` -> `quote_pending`."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for s in states:
        base = re.sub(r"[^A-Za-z0-9_]", "_", s)
        if base.lower() in _RESERVED or not base[:1].isalpha():
            base = f"s_{base}"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[s] = candidate
    return ids


def _label(text: str) -> str:
    # `;` ends a statement and `#` starts an entity code in Mermaid; neither belongs here.
    return text.replace(";", ",").replace("#", "")


def _edges(t: Transition) -> list[tuple[str, str]]:
    """(destination, who) pairs: one per distinct destination, by role where that decides."""
    actors = set(t.actors)
    if t.name.startswith("operator-"):
        actors.add("operator")
    if not t.dst_by_role:
        return [(t.dst, ", ".join(sorted(actors)))]
    turn = "/".join(sorted(actors & {"counterparty", "author"}))
    by_dst: dict[str, list[str]] = {}
    for role, dst in t.dst_by_role.items():
        # `counter (counterparty: buyer)`: the buyer, when it is their turn.
        who = f"{turn}: {role}" if turn and role in PARTIES and role not in actors else role
        by_dst.setdefault(dst, []).append(who)
    # The default destination serves every actor that has no destination of its own.
    others = sorted(actors - set(t.dst_by_role) - {"counterparty", "author"})
    if others or t.dst not in by_dst:
        by_dst.setdefault(t.dst, []).extend(others)
    return [(dst, ", ".join(sorted(roles))) for dst, roles in by_dst.items()]


def mermaid(process: Process) -> str:
    """The process as Mermaid `stateDiagram-v2` source, ending with a newline."""
    ids = _state_ids(process.states)
    head = f"{process.name} v{process.version}" + (f": {process.title}" if process.title else "")
    lines = ["stateDiagram-v2", f"    %% {_label(head)}"]
    for s in process.states:
        if ids[s] != s:
            lines.append(f'    state "{s}" as {ids[s]}')
    for t in process.transitions.values():
        timer_states = {rule.state for rule in t.timers}
        for dst, who in _edges(t):
            label = f"{t.name} ({who})" if who else t.name
            if t.initial:
                lines.append(f"    [*] --> {ids[dst]} : {_label(label)}")
                continue
            for src in sorted(t.src, key=process.states.index):
                mark = f"{TIMER_MARK} " if src in timer_states else ""
                lines.append(f"    {ids[src]} --> {ids[dst]} : {mark}{_label(label)}")
    for s in process.states:
        if s in process.final_states:
            lines.append(f"    {ids[s]} --> [*]")
    return "\n".join(lines) + "\n"
