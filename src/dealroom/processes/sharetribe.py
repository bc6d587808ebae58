"""Sharetribe `process.edn` files (format :v3) imported as dealroom processes.

`parse_edn` reads the EDN and converts it to the plain mapping that
`dealroom.domain.loader.from_mapping` accepts, the same shape as our TOML process files;
`import_edn` loads that mapping, so the static checks run; `to_toml` writes a mapping out
in our own format, so an imported process can be stored and edited as TOML.

What changes on the way:

- names keep their local part: `:transition/confirm-payment` is `confirm-payment`;
- `:actor.role/customer` is the buyer, `:actor.role/provider` the seller,
  `:actor.role/operator` the operator; a transition with `:at` is fired by the system,
  with one timer waiting in its `:from` state;
- actions become ours where we have them (line items, protected data, metadata, reviews);
  payment, booking and stock actions are handed to adapters as `payment:…`, `booking:…`
  and `stock:…` effects, anything else as `effect:…`;
- time expressions become our time-expression strings (see `dealroom.domain.timeexpr`);
- an action's `:config` has no counterpart in our format and is dropped.

It lives outside `domain/` because it needs the `edn_format` package.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import edn_format
import tomli_w

from dealroom.domain.errors import ProcessError, ProcessProblem
from dealroom.domain.loader import from_mapping
from dealroom.domain.model import Process
from dealroom.domain.timeexpr import Period, TimeExprError

FORMAT = "v3"

#: Sharetribe's roles and ours.
ROLES = {"customer": "buyer", "provider": "seller", "operator": "operator"}

#: Sharetribe actions with a dealroom action of their own.
ACTIONS = {
    "privileged-set-line-items": "set-line-items",
    "set-line-items": "set-line-items",
    # Older pricing actions that also put new terms on the table.
    "set-line-items-and-total": "set-line-items",
    "set-negotiated-total-price": "set-line-items",
    "update-protected-data": "update-protected-data",
    "privileged-update-protected-data": "update-protected-data",
    "update-metadata": "update-metadata",
    "privileged-update-metadata": "update-metadata",
    "post-review-by-customer": "post-review-by-buyer",
    "post-review-by-provider": "post-review-by-seller",
    "publish-reviews": "publish-reviews",
}
BOOKING_ACTIONS = frozenset(
    {
        "create-pending-booking",
        "create-proposed-booking",
        "create-booking",
        "accept-booking",
        "decline-booking",
        "cancel-booking",
        "update-booking",
    }
)

TIMEPOINTS_WITHOUT_ARG = frozenset(
    {
        "tx-initiated",
        "booking-start",
        "booking-end",
        "booking-display-start",
        "booking-display-end",
    }
)
#: Timepoints with an argument, and the namespace that argument lives in.
TIMEPOINTS_WITH_ARG = {
    "first-entered-state": "state",
    "last-entered-state": "state",
    "first-transitioned": "transition",
}

_TOP_KEYS = ("format", "transitions", "notifications")
_TRANSITION_KEYS = ("name", "from", "to", "actor", "at", "actions", "privileged?")
_ACTION_KEYS = ("name", "config")
_NOTIFICATION_KEYS = ("name", "on", "to", "template", "at")


class EdnFormError(ValueError):
    """A part of a process.edn that cannot be converted; the message says why."""


# --- reading ---------------------------------------------------------------------------------


def parse_edn(text: str, source: str = "<edn>", *, name: str | None = None) -> dict[str, Any]:
    """Convert a Sharetribe process.edn to our process mapping.

    `name` is the process name; by default it is taken from `source`
    (`…/default-booking/process.edn` is `default-booking`). Raises `ProcessError` naming
    `source` and, for each problem, the transition, notification or key at fault.
    """
    try:
        forms = edn_format.loads_all(text)
    except Exception as exc:  # the EDN reader raises several types on malformed input
        raise ProcessError(source, [ProcessProblem("syntax", f"not valid EDN: {exc}")]) from exc
    if len(forms) != 1 or not isinstance(forms[0], Mapping):
        found = "nothing" if not forms else f"{len(forms)} forms" if len(forms) > 1 else "no map"
        raise ProcessError(
            source, [ProcessProblem("syntax", f"expected one map {{:format :v3 …}}, found {found}")]
        )
    return _Reader(source).process(forms[0], name or _name_from(source))


def import_edn(text: str, *, name: str | None = None, source: str = "<edn>") -> Process:
    """Parse a Sharetribe process.edn and load it as a `Process` (static checks included)."""
    return from_mapping(parse_edn(text, source, name=name), source=source)


def edn_time_expression(form: Any) -> str:
    """Convert one Sharetribe time expression (`{:fn/plus …}` etc.) to our string form.

    Raises `EdnFormError` for a form that is not a time expression we know.
    """
    if not isinstance(form, Mapping) or len(form) != 1:
        raise EdnFormError(
            f"expected a time expression such as {{:fn/timepoint [...]}}, found {_show(form)}"
        )
    ((key, args),) = form.items()
    fn = _local(key, ("fn",), "a time function such as :fn/plus")
    if fn == "timepoint":
        return _timepoint(args)
    if fn in ("plus", "minus"):
        items = _vector(args, f":fn/{fn}")
        if len(items) < 2:
            raise EdnFormError(f":fn/{fn} needs a time and at least one {{:fn/period [...]}}")
        sign = " + " if fn == "plus" else " - "
        return edn_time_expression(items[0]) + "".join(sign + _period(p) for p in items[1:])
    if fn == "min":
        items = _vector(args, ":fn/min")
        if not items:
            raise EdnFormError(":fn/min needs at least one time expression")
        return "min(" + ", ".join(edn_time_expression(i) for i in items) + ")"
    if fn == "ignore-if-past":
        items = _vector(args, ":fn/ignore-if-past")
        if len(items) != 1:
            raise EdnFormError(":fn/ignore-if-past takes exactly one time expression")
        return f"ignore-if-past({edn_time_expression(items[0])})"
    if fn == "period":
        raise EdnFormError(":fn/period is a duration, not a time; use it inside :fn/plus")
    raise EdnFormError(
        f"unknown time function :fn/{fn} (known: timepoint, plus, minus, min, ignore-if-past)"
    )


def _timepoint(args: Any) -> str:
    items = _vector(args, ":fn/timepoint")
    if not items:
        raise EdnFormError(":fn/timepoint needs a timepoint such as :time/tx-initiated")
    point = _local(items[0], ("time",), "a timepoint such as :time/first-entered-state")
    if point in TIMEPOINTS_WITHOUT_ARG:
        if len(items) != 1:
            raise EdnFormError(f":time/{point} takes no argument")
        return point
    namespace = TIMEPOINTS_WITH_ARG.get(point)
    if namespace is None:
        known = ", ".join(sorted(TIMEPOINTS_WITHOUT_ARG | TIMEPOINTS_WITH_ARG.keys()))
        raise EdnFormError(f"unknown timepoint :time/{point} (known: {known})")
    if len(items) != 2:
        raise EdnFormError(f":time/{point} takes one :{namespace}/… argument")
    return f"{point}({_local(items[1], (namespace,), f'a {namespace} name')})"


def _period(form: Any) -> str:
    if not isinstance(form, Mapping) or len(form) != 1:
        raise EdnFormError(f'expected {{:fn/period ["P…"]}}, found {_show(form)}')
    ((key, args),) = form.items()
    if _local(key, ("fn",), ":fn/period") != "period":
        raise EdnFormError(f'expected {{:fn/period ["P…"]}}, found {_show(form)}')
    items = _vector(args, ":fn/period")
    if len(items) != 1 or not isinstance(items[0], str):
        raise EdnFormError(f":fn/period takes one ISO-8601 period string, found {_show(args)}")
    try:
        Period.parse(items[0])
    except TimeExprError as exc:
        raise EdnFormError(str(exc)) from exc
    return items[0]


def sharetribe_action(local: str) -> str:
    """Our action for a Sharetribe action's local name (`stripe-refund-payment` etc.)."""
    if local in ACTIONS:
        return ACTIONS[local]
    if local.startswith(("stripe-", "calculate-")):
        return f"payment:{local}"
    if local in BOOKING_ACTIONS or local.endswith("-booking"):
        return f"booking:{local}"
    if "stock-reservation" in local:
        return f"stock:{local}"
    return f"effect:{local}"


class _Reader:
    """Converts the parsed EDN, collecting every problem before it reports them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ProcessProblem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(ProcessProblem(where, message))

    def process(self, raw: Mapping[Any, Any], name: str) -> dict[str, Any]:
        keys = self.keys(raw, "", _TOP_KEYS)
        fmt = keys.get("format")
        if fmt is None:
            self.add(":format", "missing; Sharetribe processes declare :format :v3")
        elif not (isinstance(fmt, edn_format.Keyword) and fmt.name == FORMAT):
            self.add(":format", f"only :v3 is supported, found {_show(fmt)}")

        transitions: list[dict[str, Any]] = []
        raw_transitions = keys.get("transitions")
        if not _is_vector(raw_transitions) or not raw_transitions:
            self.add(":transitions", "missing: a vector of transition maps")
        else:
            for i, rt in enumerate(raw_transitions):
                t = self.transition(i, rt)
                if t is not None:
                    transitions.append(t)

        notifications: list[dict[str, Any]] = []
        raw_notifications = keys.get("notifications", [])
        if not _is_vector(raw_notifications):
            self.add(":notifications", "must be a vector of notification maps")
        else:
            for i, rn in enumerate(raw_notifications):
                n = self.notification(i, rn)
                if n is not None:
                    notifications.append(n)
        seen: set[str] = set()
        for n in notifications:
            if n["name"] in seen:
                self.add(f"notification '{n['name']}'", "duplicate notification name")
            seen.add(n["name"])

        if self.problems:
            raise ProcessError(self.source, self.problems)

        states: dict[str, str] = {}
        for t in transitions:
            for s in (t.get("from"), t["to"]):
                if s is not None:
                    states.setdefault(s, f"Sharetribe state {s}")
        mapping: dict[str, Any] = {
            "process": {
                "name": name,
                "version": 1,
                "title": name,
                "description": f"Imported from the Sharetribe process {self.source}",
            },
            "states": states,
            "transitions": transitions,
        }
        if notifications:
            mapping["notifications"] = notifications
        return mapping

    def keys(self, raw: Mapping[Any, Any], where: str, allowed: Sequence[str]) -> dict[str, Any]:
        """The map's entries by plain key name; unknown or non-keyword keys are problems."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(key, edn_format.Keyword) and key.name in allowed:
                out[key.name] = value
            else:
                known = ", ".join(f":{k}" for k in allowed)
                at = f"{where}.{_show(key)}" if where else _show(key)
                self.add(at, f"unknown key (allowed: {known})")
        return out

    def transition(self, i: int, rt: Any) -> dict[str, Any] | None:
        where = f"transitions[{i}]"
        if not isinstance(rt, Mapping):
            self.add(where, f"must be a map, found {_show(rt)}")
            return None
        try:
            name = _local(rt.get(edn_format.Keyword("name")), ("transition",), "a :transition/…")
        except EdnFormError as exc:
            self.add(f"{where}.:name", str(exc))
            return None
        where = f"{where} ({name})"
        before = len(self.problems)
        keys = self.keys(rt, where, _TRANSITION_KEYS)

        def convert(key: str, fn: Callable[[Any], Any]) -> Any:
            try:
                return fn(keys[key])
            except EdnFormError as exc:
                self.add(f"{where}.:{key}", str(exc))
                return None

        src = convert("from", _state) if "from" in keys else None
        dst = convert("to", _state) if "to" in keys else None
        if "to" not in keys:
            self.add(f"{where}.:to", "missing: the :state/… this transition leads to")

        actor: Any = None
        timers: list[dict[str, Any]] = []
        if ("actor" in keys) == ("at" in keys):
            self.add(
                where,
                "has both :actor and :at; Sharetribe allows one"
                if "actor" in keys
                else "needs an :actor (customer, provider, operator) or an :at time",
            )
        elif "actor" in keys:
            actor = convert("actor", _actor)
        else:
            at = convert("at", edn_time_expression)
            if "from" not in keys:
                self.add(f"{where}.:at", "an automatic transition needs a :from state to wait in")
            actor = "system"
            timers = [{"state": src, "at": at}]

        privileged = keys.get("privileged?", False)
        if not isinstance(privileged, bool):
            self.add(f"{where}.:privileged?", f"must be true or false, found {_show(privileged)}")
        actions = convert("actions", _actions) if "actions" in keys else []

        if len(self.problems) > before:
            return None
        # The keys in the order our TOML files use.
        out: dict[str, Any] = {"name": name}
        if src is not None:
            out["from"] = src
        out.update(to=dst, actor=actor)
        if privileged:
            out["privileged"] = True
        out["actions"] = actions
        if timers:
            out["timers"] = timers
        return out

    def notification(self, i: int, rn: Any) -> dict[str, Any] | None:
        where = f"notifications[{i}]"
        if not isinstance(rn, Mapping):
            self.add(where, f"must be a map, found {_show(rn)}")
            return None
        try:
            name = _local(
                rn.get(edn_format.Keyword("name")), ("notification",), "a :notification/…"
            )
        except EdnFormError as exc:
            self.add(f"{where}.:name", str(exc))
            return None
        where = f"{where} ({name})"
        before = len(self.problems)
        keys = self.keys(rn, where, _NOTIFICATION_KEYS)
        converters: dict[str, Callable[[Any], Any]] = {
            "on": lambda v: [_local(v, ("transition",), "a :transition/…")],
            "to": _actor_list,
            "template": _template,
            "at": edn_time_expression,
        }
        out: dict[str, Any] = {"name": name}
        for key, convert in converters.items():
            if key not in keys:
                if key != "at":
                    self.add(f"{where}.:{key}", "missing")
                continue
            try:
                out[key] = convert(keys[key])
            except EdnFormError as exc:
                self.add(f"{where}.:{key}", str(exc))
        return out if len(self.problems) == before else None


def _state(value: Any) -> str:
    return _local(value, ("state",), "a :state/…")


def _actions(raw: Any) -> list[str]:
    out: list[str] = []
    for j, ra in enumerate(_vector(raw, ":actions")):
        if not isinstance(ra, Mapping):
            raise EdnFormError(f"action {j} must be a map {{:name :action/…}}, found {_show(ra)}")
        for key in ra:
            if not (isinstance(key, edn_format.Keyword) and key.name in _ACTION_KEYS):
                raise EdnFormError(
                    f"action {j}: unknown key {_show(key)} (allowed: :name, :config)"
                )
        local = _local(
            ra.get(edn_format.Keyword("name")), ("action", "action.initializer"), "an :action/…"
        )
        out.append(sharetribe_action(local))
    return out


def _actor(value: Any) -> str | list[str]:
    roles = _actor_list(value)
    return roles[0] if len(roles) == 1 else roles


def _actor_list(value: Any) -> list[str]:
    """One role, or a set or vector of them (older multi-actor processes)."""
    items = sorted(value, key=str) if isinstance(value, frozenset) else value
    if _is_vector(items):
        if not items:
            raise EdnFormError("names no role")
        return [_role(v) for v in items]
    return [_role(value)]


def _role(value: Any) -> str:
    role = _local(value, ("actor.role",), "a role such as :actor.role/customer")
    if role not in ROLES:
        raise EdnFormError(f"unknown role :actor.role/{role} (known: customer, provider, operator)")
    return ROLES[role]


def _template(value: Any) -> str:
    if not isinstance(value, edn_format.Keyword):
        raise EdnFormError(f"expected a template keyword such as :new-order, found {_show(value)}")
    return str(value.name.rsplit("/", 1)[-1])


def _local(value: Any, namespaces: tuple[str, ...], what: str) -> str:
    """The local part of a namespaced keyword, checking its namespace."""
    if not isinstance(value, edn_format.Keyword) or value.namespace is None:
        raise EdnFormError(f"expected {what}, found {_show(value)}")
    namespace = str(value.namespace)
    if namespace not in namespaces:
        raise EdnFormError(f"expected {what}, found {_show(value)}")
    local = str(value.name)[len(namespace) + 1 :]
    if not local:
        raise EdnFormError(f"expected {what}, found {_show(value)}")
    return local


def _is_vector(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _vector(value: Any, what: str) -> Sequence[Any]:
    if not _is_vector(value):
        raise EdnFormError(f"{what} takes a vector of arguments, found {_show(value)}")
    return value  # type: ignore[no-any-return]


def _show(value: Any) -> str:
    """A short EDN rendering of `value` for messages."""
    if value is None:
        return "nothing"
    try:
        text = str(edn_format.dumps(value))
    except Exception:  # anything the writer cannot render is shown as Python sees it
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _name_from(source: str) -> str:
    path = PurePath(source)
    stem = path.parent.name if path.stem == "process" and path.parent.name else path.stem
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return name if name and name[0].isalpha() else "imported"


# --- writing ---------------------------------------------------------------------------------

_ORDER = {
    "": ("process", "settings", "states", "transitions", "notifications"),
    "process": ("name", "version", "title", "description"),
    "transitions": (
        "name", "title", "from", "to", "actor", "actor_rule", "privileged", "proposer",
        "sale_modes", "actions", "event", "timers",
    ),
    "notifications": ("name", "on", "state", "to", "template", "at", "before", "by"),
}  # fmt: skip
_ARRAY_RE = re.compile(r"^(?P<key>[^\n=\[]+?) = \[\n(?P<items>(?:    [^\n]*,\n)+)\]$", re.M)
_LINE = 100


def to_toml(mapping: Mapping[str, Any], *, header: str | None = None) -> str:
    """Write a process mapping in our TOML format: `[process]`, `[states]`, `[[transitions]]`…

    Short arrays stay on one line. `header` becomes a leading comment. The result loads
    back to the same mapping.
    """
    ordered = _ordered(mapping, "")
    raw = tomli_w.dumps(ordered)
    text = _ARRAY_RE.sub(_inline_array, raw)
    if tomllib.loads(text) != tomllib.loads(raw):  # never trade correctness for looks
        text = raw
    if header:
        comment = "\n".join(f"# {line}".rstrip() for line in header.strip("\n").splitlines())
        text = f"{comment}\n\n{text}"
    return text


def _ordered(mapping: Mapping[str, Any], table: str) -> dict[str, Any]:
    order = _ORDER.get(table, ())
    keys = [k for k in order if k in mapping] + [k for k in mapping if k not in order]
    out: dict[str, Any] = {}
    for key in keys:
        value = mapping[key]
        if table == "" and key in ("transitions", "notifications") and isinstance(value, list):
            value = [_ordered(v, key) if isinstance(v, Mapping) else v for v in value]
        elif table == "" and key == "process" and isinstance(value, Mapping):
            value = _ordered(value, key)
        out[key] = value
    return out


def _inline_array(m: re.Match[str]) -> str:
    items = [line.strip().removesuffix(",") for line in m["items"].splitlines()]
    one_line = f"{m['key']} = [{', '.join(items)}]"
    return one_line if len(one_line) <= _LINE else m.group(0)
