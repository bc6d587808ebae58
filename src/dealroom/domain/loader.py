"""Reading process files (TOML) into `Process`, with errors that say where and what.

The format is documented in docs/processes.md. `load_text` parses and validates; every
problem found is reported at once, each naming the file, the line where it can be placed,
the key, and what is wrong. The static checks of `checks.py` run on every load.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dealroom.domain.actions import is_known_action
from dealroom.domain.checks import static_problems
from dealroom.domain.errors import ProcessError, ProcessProblem
from dealroom.domain.model import ACTORS, RECIPIENTS, Notification, Process, TimerRule, Transition
from dealroom.domain.settings import Settings, SettingsError
from dealroom.domain.timeexpr import Expr, Period, TimeExprError
from dealroom.domain.timeexpr import parse as parse_time

SALE_MODES = ("negotiable", "buy_now", "auction")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
EVENT_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


class _Collector:
    """Collects problems and knows where in the text a key lives."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.problems: list[ProcessProblem] = []

    def line_of_table(self, table: str, index: int) -> int | None:
        """Line (1-based) of the index-th `[[table]]` header."""
        seen = -1
        for n, line in enumerate(self.lines, 1):
            if line.strip() == f"[[{table}]]":
                seen += 1
                if seen == index:
                    return n
        return None

    def line_of_key(self, table: str | None, key: str) -> int | None:
        inside = table is None
        for n, line in enumerate(self.lines, 1):
            stripped = line.strip()
            if stripped.startswith("["):
                inside = table is not None and stripped == f"[{table}]"
                continue
            if inside and re.match(rf"^{re.escape(key)}\s*=", stripped):
                return n
        return None

    def add(self, where: str, message: str, line: int | None = None) -> None:
        loc = f"line {line}, {where}" if line else where
        self.problems.append(ProcessProblem(loc, message))


def load_file(path: str | Path) -> Process:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProcessError(str(p), [ProcessProblem("file", exc.strerror or str(exc))]) from exc
    return load_text(text, source=str(p))


def load_text(text: str, *, source: str = "<text>") -> Process:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProcessError(source, [ProcessProblem("syntax", str(exc))]) from exc
    return from_mapping(raw, source=source, text=text)


def from_mapping(raw: Mapping[str, Any], *, source: str = "<data>", text: str = "") -> Process:
    c = _Collector(source, text)
    for key in raw:
        if key not in {"process", "settings", "states", "transitions", "notifications"}:
            c.add(
                key,
                "unknown top-level table (expected process, settings, states, transitions, notifications)",
                c.line_of_key(None, key),
            )

    head = raw.get("process")
    if not isinstance(head, Mapping):
        c.add("process", "missing [process] table with name and version")
        head = {}
    for key in head:
        if key not in ("name", "version", "title", "description"):
            c.add(
                f"process.{key}",
                "unknown key (allowed: name, version, title, description)",
                c.line_of_key("process", key),
            )
    name = head.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        c.add(
            "process.name",
            "must be a lower-case name such as 'rfq'",
            c.line_of_key("process", "name"),
        )
        name = "invalid"
    version = head.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        c.add(
            "process.version", "must be a whole number from 1", c.line_of_key("process", "version")
        )
        version = 1

    settings = Settings()
    raw_settings = raw.get("settings", {})
    if not isinstance(raw_settings, Mapping):
        c.add("settings", "must be a table")
    else:
        try:
            settings = Settings.from_mapping(raw_settings)
        except SettingsError as exc:
            for problem in exc.problems:
                key = problem.split(":", 1)[0]
                c.add(
                    f"settings.{key}",
                    problem.split(":", 1)[-1].strip(),
                    c.line_of_key("settings", key),
                )

    raw_states = raw.get("states")
    states: dict[str, str] = {}
    if not isinstance(raw_states, Mapping) or not raw_states:
        c.add("states", "missing [states] table: each state with a short description")
    else:
        for s, title in raw_states.items():
            if not NAME_RE.match(s):
                c.add(
                    f"states.{s}",
                    "state names are lower-case words joined by '-'",
                    c.line_of_key("states", s),
                )
            states[s] = title if isinstance(title, str) else ""

    transitions: dict[str, Transition] = {}
    raw_transitions = raw.get("transitions")
    if not isinstance(raw_transitions, list) or not raw_transitions:
        c.add("transitions", "missing [[transitions]]")
        raw_transitions = []
    for i, rt in enumerate(raw_transitions):
        t = _transition(c, i, rt, states)
        if t is None:
            continue
        if t.name in transitions:
            c.add(
                f"transitions[{i}] ({t.name})",
                "duplicate transition name",
                c.line_of_table("transitions", i),
            )
        transitions[t.name] = t

    notifications = tuple(
        n
        for i, rn in enumerate(raw.get("notifications", []) or [])
        if (n := _notification(c, i, rn, transitions, states)) is not None
    )

    process = Process(
        name=name,
        version=version,
        states=tuple(states),
        transitions=transitions,
        settings=settings,
        notifications=notifications,
        title=str(head.get("title", "")),
        description=str(head.get("description", "")),
        state_titles=states,
        source=source,
    )
    if not c.problems:
        c.problems.extend(static_problems(process))
    if c.problems:
        raise ProcessError(source, c.problems)
    return process


def _names(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _time(c: _Collector, where: str, text: Any, line: int | None) -> Expr | None:
    if not isinstance(text, str):
        c.add(where, "a time expression must be a string such as 'entered + P7D'", line)
        return None
    try:
        return parse_time(text)
    except TimeExprError as exc:
        c.add(where, f"bad time expression: {exc}", line)
        return None


def _transition(c: _Collector, i: int, rt: Any, states: Mapping[str, str]) -> Transition | None:
    line = c.line_of_table("transitions", i)
    if not isinstance(rt, Mapping):
        c.add(f"transitions[{i}]", "must be a table", line)
        return None
    name = rt.get("name")
    where = f"transitions[{i}]" + (f" ({name})" if isinstance(name, str) else "")
    if not isinstance(name, str) or not NAME_RE.match(name):
        c.add(where, "needs a name: lower-case words joined by '-'", line)
        return None
    allowed = {
        "name", "from", "to", "actor", "actions", "event", "timers", "privileged",
        "actor_rule", "title", "sale_modes", "proposer", "listing_price",
    }  # fmt: skip
    for key in rt:
        if key not in allowed:
            c.add(f"{where}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})", line)

    src = _names(rt.get("from", []))
    if src is None:
        c.add(f"{where}.from", "must be a state name or a list of them", line)
        src = []
    for s in src:
        if s not in states:
            c.add(f"{where}.from", f"unknown state '{s}'", line)

    raw_to = rt.get("to")
    dst = ""
    dst_by_role: dict[str, str] = {}
    if isinstance(raw_to, str):
        dst = raw_to
    elif isinstance(raw_to, Mapping) and raw_to:
        dst_by_role = {k: v for k, v in raw_to.items() if isinstance(v, str)}
        dst = dst_by_role.get("*") or next(iter(dst_by_role.values()), "")
        dst_by_role.pop("*", None)
        for role in dst_by_role:
            if role not in ("buyer", "seller", "operator", "system"):
                c.add(
                    f"{where}.to.{role}",
                    "a destination by role names buyer, seller, operator or system",
                    line,
                )
    else:
        c.add(f"{where}.to", "missing: the state this transition leads to", line)
    for d in {dst, *dst_by_role.values()}:
        if d and d not in states:
            c.add(f"{where}.to", f"unknown state '{d}'", line)

    actors = _names(rt.get("actor", []))
    timers: list[TimerRule] = []
    raw_timers = rt.get("timers", [])
    if not isinstance(raw_timers, list):
        c.add(f"{where}.timers", "must be a list of tables", line)
        raw_timers = []
    for j, rtm in enumerate(raw_timers):
        tw = f"{where}.timers[{j}]"
        if not isinstance(rtm, Mapping):
            c.add(tw, "must be a table", line)
            continue
        for key in rtm:
            if key not in ("state", "at", "rule", "event", "pending_by", "after"):
                c.add(
                    f"{tw}.{key}",
                    "unknown key (allowed: state, at, rule, event, pending_by, after)",
                    line,
                )
        state = rtm.get("state")
        if state is None and len(src) == 1:
            state = src[0]
        if not isinstance(state, str) or state not in src:
            c.add(f"{tw}.state", f"must be one of the transition's from-states {src}", line)
            continue
        at = _time(c, f"{tw}.at", rtm.get("at"), line)
        pending_by = rtm.get("pending_by")
        if pending_by not in (None, "buyer", "seller"):
            c.add(f"{tw}.pending_by", "must be buyer or seller", line)
        event = rtm.get("event")
        if event is not None and (not isinstance(event, str) or not EVENT_RE.match(event)):
            c.add(f"{tw}.event", "event types are UPPER_SNAKE_CASE", line)
        after = _names(rtm.get("after", []))
        if after is None:
            c.add(f"{tw}.after", "must be a transition name or a list of them", line)
            after = []
        if at is not None:
            timers.append(
                TimerRule(state, at, rtm.get("rule"), event, pending_by, frozenset(after))
            )
    if actors is None or (not actors and not timers):
        c.add(
            f"{where}.actor",
            "needs an actor (buyer, seller, operator, system, counterparty, author) or timers",
            line,
        )
        actors = []
    for a in actors:
        if a not in ACTORS:
            c.add(
                f"{where}.actor", f"unknown actor '{a}' (known: {', '.join(sorted(ACTORS))})", line
            )
    if timers and "system" not in actors:
        actors.append("system")
    if not src and ("counterparty" in actors or "author" in actors):
        c.add(
            f"{where}.actor",
            "an initial transition has no pending quote, so no counterparty or author",
            line,
        )

    actions = _names(rt.get("actions", []))
    if actions is None:
        c.add(f"{where}.actions", "must be a list of action names", line)
        actions = []
    for a in actions:
        if not is_known_action(a):
            c.add(f"{where}.actions", f"unknown action '{a}'", line)

    raw_event = rt.get("event", {})
    events: dict[str, str] = {}
    if isinstance(raw_event, str):
        events = {"*": raw_event}
    elif isinstance(raw_event, Mapping):
        events = {k: v for k, v in raw_event.items() if isinstance(v, str)}
    for v in events.values():
        if not EVENT_RE.match(v):
            c.add(f"{where}.event", f"event type '{v}' must be UPPER_SNAKE_CASE", line)

    sale_modes = _names(rt.get("sale_modes", []))
    if sale_modes is None or any(m not in SALE_MODES for m in sale_modes):
        c.add(f"{where}.sale_modes", f"must list sale modes among {', '.join(SALE_MODES)}", line)
        sale_modes = []
    proposer = rt.get("proposer")
    if proposer not in (None, "buyer", "seller"):
        c.add(f"{where}.proposer", "must be buyer or seller", line)
        proposer = None

    return Transition(
        name=name,
        src=frozenset(src),
        dst=dst,
        dst_by_role=dst_by_role,
        actors=frozenset(actors),
        actions=tuple(actions),
        events=events,
        timers=tuple(timers),
        privileged=bool(rt.get("privileged", False)),
        actor_rule=rt.get("actor_rule"),
        title=rt.get("title"),
        sale_modes=frozenset(sale_modes),
        proposer=proposer,
        listing_price=bool(rt.get("listing_price", False)),
    )


def _notification(
    c: _Collector, i: int, rn: Any, transitions: Mapping[str, Transition], states: Mapping[str, str]
) -> Notification | None:
    line = c.line_of_table("notifications", i)
    where = f"notifications[{i}]"
    if not isinstance(rn, Mapping) or not isinstance(rn.get("name"), str):
        c.add(where, "needs a name", line)
        return None
    where += f" ({rn['name']})"
    allowed = ("name", "on", "state", "to", "template", "at", "before", "by")
    for key in rn:
        if key not in allowed:
            c.add(f"{where}.{key}", f"unknown key (allowed: {', '.join(allowed)})", line)
    on = _names(rn.get("on", [])) or []
    for t in on:
        if t not in transitions:
            c.add(f"{where}.on", f"unknown transition '{t}'", line)
    state = rn.get("state")
    if state is not None and state not in states:
        c.add(f"{where}.state", f"unknown state '{state}'", line)
    if not on and rn.get("before") is None:
        c.add(
            where,
            "needs `on` (the transitions that send it) or `before` (a timer it warns of)",
            line,
        )
    to = _names(rn.get("to", [])) or []
    if not to or any(r not in RECIPIENTS for r in to):
        c.add(f"{where}.to", "must name buyer, seller, operator or other-party", line)
    at = _time(c, f"{where}.at", rn["at"], line) if "at" in rn else None
    before = rn.get("before")
    by = rn.get("by")
    if before is not None:
        timer_rules = {r.rule for t in transitions.values() for r in t.timers}
        if before not in transitions and before not in timer_rules:
            c.add(f"{where}.before", f"'{before}' is neither a transition nor a timer's rule", line)
        if not isinstance(by, str):
            c.add(f"{where}.by", "with `before`, give `by`: a setting name or a period", line)
        elif by.startswith("P"):
            try:
                Period.parse(by)
            except TimeExprError as exc:
                c.add(f"{where}.by", str(exc), line)
        elif not isinstance(getattr(Settings(), by, None), Period):
            c.add(f"{where}.by", f"'{by}' is not a duration setting", line)
    template = rn.get("template", rn["name"])
    return Notification(
        name=rn["name"],
        to=tuple(to),
        template=str(template),
        on=tuple(on),
        state=state,
        at=at,
        before=before,
        by=by,
    )
