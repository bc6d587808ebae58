"""Processes: the state machines deals run, as the API shows them, and importing one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from dealroom.api.schemas.base import Input
from dealroom.domain.loader import NAME_RE

ProcessName = Annotated[str, StringConstraints(max_length=64, pattern=NAME_RE.pattern)]


class StateRead(BaseModel):
    name: str
    description: str | None
    final: bool


class TimerRead(BaseModel):
    state: str
    at: str = Field(description="The time expression, e.g. `entered + setting(response_window)`.")
    rule: str | None
    event: str | None


class ProcessTransitionRead(BaseModel):
    """A transition as the process defines it (firing one on a deal is `TransitionCreate`)."""

    name: str
    title: str | None
    initial: bool
    automatic: bool
    from_: list[str] = Field(serialization_alias="from")
    to: str
    to_by_role: dict[str, str]
    actors: list[str]
    actions: list[str]
    timers: list[TimerRead]
    privileged: bool
    sale_modes: list[str]


class ProcessNotificationRead(BaseModel):
    """A notification the process declares: who hears of what, and when. Each one sent
    becomes a bell item (`NotificationRead`)."""

    name: str
    to: list[str]
    template: str
    on: list[str]
    state: str | None
    at: str | None
    before: str | None
    by: str | None


class ProcessRead(BaseModel):
    name: str
    version: int
    title: str
    description: str
    builtin: bool
    states: list[StateRead]
    transitions: list[ProcessTransitionRead]
    settings: dict[str, Any]
    notifications: list[ProcessNotificationRead]


class ProcessList(BaseModel):
    items: list[ProcessRead]


class ProcessCreate(Input):
    format: Literal["toml", "edn"]
    definition: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]
    name: ProcessName | None = Field(
        default=None,
        description="The name to store an EDN process under (required for EDN; a TOML "
        "definition names itself).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "format": "edn",
                    "name": "quick-offer",
                    "definition": "{:format :v3\n :transitions\n [{:name :transition/request"
                    "\n   :actor :actor.role/customer\n   :actions []\n   :to :state/requested}"
                    "\n  {:name :transition/accept\n   :actor :actor.role/provider"
                    "\n   :actions []\n   :from :state/requested\n   :to :state/accepted}]"
                    "\n :notifications []}",
                },
                {
                    "format": "toml",
                    "definition": '[process]\nname = "quick-offer"\nversion = 1\n\n[states]\n'
                    'requested = "Asked"\naccepted = "Agreed"\n\n[[transitions]]\n'
                    'name = "request"\nto = "requested"\nactor = "buyer"\n\n'
                    '[[transitions]]\nname = "accept"\nfrom = "requested"\n'
                    'to = "accepted"\nactor = "seller"\n',
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _name_only_for_edn(self) -> ProcessCreate:
        if self.name is not None and self.format == "toml":
            raise ValueError("a TOML definition names itself in [process] name; drop `name`")
        if self.name is None and self.format == "edn":
            raise ValueError("an EDN process needs a `name` to be stored under")
        return self
