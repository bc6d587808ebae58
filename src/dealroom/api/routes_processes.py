"""Process definitions: list, show, and import (dealroom TOML or a Sharetribe process.edn).

An imported process is stored in the database as dealroom TOML; every server reads it from
there, so it is usable at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from dealroom import processes as builtins
from dealroom.api.schemas import (
    ProcessCreate,
    ProcessList,
    ProcessNotificationRead,
    ProcessRead,
    ProcessTransitionRead,
    StateRead,
    TimerRead,
)
from dealroom.domain.errors import FieldProblem, InvalidRequest, ProcessError
from dealroom.domain.model import Process
from dealroom.edge.caller import CurrentUser, require_staff
from dealroom.edge.idempotency import Idempotent
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW, answer
from dealroom.services import processes

router = APIRouter(prefix="/v1/processes", tags=["processes"], responses=NEEDS_TOKEN)


def process_read(p: Process) -> ProcessRead:
    final = p.final_states
    return ProcessRead(
        name=p.name,
        version=p.version,
        title=p.title,
        description=p.description,
        builtin=p.name in builtins.BUILTIN,
        states=[
            StateRead(name=s, description=p.state_titles.get(s), final=s in final) for s in p.states
        ],
        transitions=[
            ProcessTransitionRead(
                name=t.name,
                title=t.title,
                initial=t.initial,
                automatic=t.automatic,
                from_=sorted(t.src),
                to=t.dst,
                to_by_role=dict(t.dst_by_role),
                actors=sorted(t.actors),
                actions=list(t.actions),
                timers=[
                    TimerRead(state=r.state, at=r.at.text(), rule=r.rule, event=r.event)
                    for r in t.timers
                ],
                privileged=t.privileged,
                sale_modes=sorted(t.sale_modes),
            )
            for t in p.transitions.values()
        ],
        settings=p.settings.to_mapping(),
        notifications=[
            ProcessNotificationRead(
                name=n.name,
                to=list(n.to),
                template=n.template,
                on=list(n.on),
                state=n.state,
                at=n.at.text() if n.at is not None else None,
                before=n.before,
                by=n.by,
            )
            for n in p.notifications
        ],
    )


@router.get("", response_model=ProcessList, response_model_by_alias=True)
def list_processes(uow: UoW, _user: CurrentUser) -> ProcessList:
    """Every process deals can run: the built-in ones and those imported (latest version)."""
    return ProcessList(items=[process_read(p) for p in processes.list_processes(uow.session)])


@router.get(
    "/{name}",
    response_model=ProcessRead,
    response_model_by_alias=True,
    responses={404: {"description": "No such process or version (NEG-011)."}},
)
def show_process(
    name: str,
    uow: UoW,
    _user: CurrentUser,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> ProcessRead:
    """One process: states, transitions (with who fires them and their timers), rule
    settings and notifications. The latest version unless `version` is given."""
    return process_read(processes.get_process(uow.session, name[:64], version))


def _refused(exc: ProcessError) -> InvalidRequest:
    return InvalidRequest(
        f"The process definition has {len(exc.problems)} problem(s); fix them all and resend.",
        rule="PROCESS",
        field="definition",
        problems=[FieldProblem(p.where, "PROCESS", p.message) for p in exc.problems],
    )


@router.post(
    "",
    status_code=201,
    response_model=ProcessRead,
    response_model_by_alias=True,
    dependencies=[Idempotent],
    responses={
        403: {"description": "Only admins and operators import processes (NEG-008)."},
        409: {"description": "The name is a built-in process (NEG-014)."},
        422: {"description": "The definition has problems, all listed (NEG-016)."},
    },
)
def import_process(body: ProcessCreate, uow: UoW, user: CurrentUser) -> Response:
    """Store a process as the next version of its name: dealroom's TOML, or a Sharetribe
    `process.edn` (format :v3) converted on the way in. Running servers use it at once."""
    require_staff(user)
    try:
        stored = processes.import_process(
            uow.session,
            body.definition,
            source_format=body.format,
            now=uow.now,
            name=body.name,
            source="process.edn",
            header="Imported from a Sharetribe process.edn.",
        )
    except ProcessError as exc:
        raise _refused(exc) from None
    except ValueError as exc:  # a form the EDN converter does not know
        raise InvalidRequest(str(exc), rule="PROCESS", field="definition") from None
    return answer(uow, process_read(stored).model_dump(mode="json", by_alias=True), 201)
