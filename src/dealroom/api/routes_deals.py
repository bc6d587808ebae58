"""Deal routes: open a deal, list and read deals, fire transitions, quotes and their
differences, messages, the audit trail (events, verification, export).

Thin routes: parse, authenticate, call one service, render with `services.views`. The unit
of work commits before the answer leaves; writes honour `Idempotency-Key` (not on dry runs,
which write nothing and so have nothing to replay).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dealroom.api import schemas as sc
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import InvalidRequest
from dealroom.domain.quotes import diff
from dealroom.domain.state import Payload
from dealroom.domain.timestamps import iso
from dealroom.edge.caller import CurrentUser
from dealroom.edge.idempotency import idempotent, in_one_trip
from dealroom.edge.uow import UoW, answer, json_response
from dealroom.services import deals, feed, views
from dealroom.services.accounts import Caller
from dealroom.services.audit import chain
from dealroom.services.deals import trail
from dealroom.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/deals", tags=["deals"])

PROBLEM = "application/problem+json"
_PROBLEM_SCHEMA = sc.ProblemRead.model_json_schema()
_PROBLEM_TEXT = {
    401: "Not signed in (NEG-012).",
    403: "The caller may not make this move now (NEG-008, NEG-009, NEG-015).",
    404: "No such deal, or the caller may not see it (NEG-011).",
    409: "Stale `expected_version` (NEG-004, with `current_version`), a move not possible in "
    "this state (NEG-007), a limit reached (NEG-002) or terms already accepted (NEG-005).",
    410: "The quote or request expired (NEG-001, NEG-006).",
    422: "Invalid input: terms refused (NEG-003, every offending field listed) or another "
    "invalid request (NEG-016).",
    429: "Too many offers (NEG-013, with Retry-After).",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    return {
        s: {"description": _PROBLEM_TEXT[s], "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}
        for s in statuses
    }


READ = problems(401, 404, 422)
WRITE = problems(401, 403, 404, 409, 410, 422, 429)

DryRun = Annotated[
    bool,
    Query(description="Validate and answer the would-be deal without saving anything."),
]


async def _body(request: Request) -> bytes:
    return await request.body()


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="A retry with the same key and body gets the first answer again "
        "(header Idempotent-Replayed: true) and changes nothing.",
    ),
]


def idempotent_write(
    request: Request,
    uow: UoW,
    user: CurrentUser,
    body: Annotated[bytes, Depends(_body)],
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Honour `Idempotency-Key` (the header is declared here for the OpenAPI document)."""
    idempotent(request, uow, user, body)


# --- parsing ------------------------------------------------------------------------------


def _payload(body: sc.DealCreate | sc.TransitionCreate, data: dict[str, Any]) -> Payload:
    return Payload(
        terms=body.terms.given() if body.terms is not None else None,
        message=body.message,
        reason=body.reason,
        data=data,
    )


# --- deals --------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=sc.DealRead,
    summary="Open a deal",
    description="Fire an initial transition of the listing's process (or `process`): a "
    "request for quote, an offer, buy-now, or (operators) an auction win with "
    "`data.buyer_id`. With `?dry_run=true` the would-be deal is answered with 200 and "
    "nothing is saved.",
    responses={200: {"description": "Dry run: the would-be deal, not saved."}, **WRITE},
)
async def create_deal(
    request: Request,
    body: sc.DealCreate,
    dry_run: DryRun = False,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    data = dict(body.data or {})
    buyer_id = data.pop("buyer_id", None)
    if buyer_id is not None and (not isinstance(buyer_id, str) or len(buyer_id) > 36):
        raise InvalidRequest("data.buyer_id must be a user id.", field="data.buyer_id")

    def open_it(uow: UnitOfWork, caller: Caller) -> Response:
        result = deals.open_deal(
            uow,
            caller.user(uow.session),
            listing_id=body.listing_id,
            transition=body.transition,
            process_name=body.process,
            payload=_payload(body, data),
            buyer_id=buyer_id,
            dry_run=dry_run,
        )
        if dry_run:
            return json_response({**views.result_json(uow, result), "dry_run": True})
        return answer(uow, views.result_json(uow, result), 201)

    raw = await request.body()
    return await run_in_threadpool(in_one_trip, request, raw, open_it, replayable=not dry_run)


@router.get(
    "",
    response_model=sc.DealPage,
    summary="List deals",
    description="Deals where the caller is a party (operators and admins: all deals), most "
    "recently updated first. Filter by `state`, the caller's `role` and `process`; page "
    "with `limit` and the `next_cursor` of the previous page.",
    responses=problems(401, 422),
)
def list_deals(
    uow: UoW,
    user: CurrentUser,
    state: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[
        Literal["buyer", "seller"] | None, Query(description="The caller's side.")
    ] = None,
    process: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    rows, next_cursor = deals.list_deals(
        uow.session, user, state=state, role=role, process=process, limit=limit, cursor=cursor
    )
    items = views.deal_list_json(uow, user, rows)
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get(
    "/{deal_id}",
    response_model=sc.DealRead,
    summary="Read a deal",
    description="The deal as the caller sees it, with the moves the caller may make now.",
    responses=READ,
)
def read_deal(deal_id: str, uow: UoW, user: CurrentUser) -> Response:
    return json_response(views.result_json(uow, deals.read_deal(uow, user, deal_id)))


@router.post(
    "/{deal_id}/transitions",
    response_model=sc.DealRead,
    summary="Fire a transition",
    description="Make a move (counter, accept, request-close …) on the deal at "
    "`expected_version`; a stale version is refused with 409 NEG-004 and `current_version`, "
    "and nothing is written. With `?dry_run=true` the move is validated and the would-be "
    "deal answered without saving.",
    responses=WRITE,
)
async def fire_transition(
    request: Request,
    deal_id: str,
    body: sc.TransitionCreate,
    dry_run: DryRun = False,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def move(uow: UnitOfWork, caller: Caller) -> Response:
        result = deals.fire_transition_as(
            uow,
            caller,
            deal_id=deal_id,
            name=body.name,
            expected_version=body.expected_version,
            payload=_payload(body, dict(body.data or {})),
            dry_run=dry_run,
        )
        if dry_run:
            would_be = views.result_json(uow, result, version=result.deal.version + 1)
            return json_response({**would_be, "dry_run": True})
        return answer(uow, views.result_json(uow, result), 200)

    raw = await request.body()
    return await run_in_threadpool(in_one_trip, request, raw, move, replayable=not dry_run)


# --- quotes -------------------------------------------------------------------------------


@router.get(
    "/{deal_id}/quotes",
    response_model=sc.QuoteList,
    summary="List quote versions",
    description="Every quote version of the deal, oldest first.",
    responses=READ,
)
def list_quotes(deal_id: str, uow: UoW, user: CurrentUser) -> Response:
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    rows = deals.load_versions(uow.session, deal.id)
    return json_response({"items": [deals.version_of(v).to_json() for v in rows]})


@router.get(
    "/{deal_id}/quotes/diff",
    response_model=sc.QuoteDiff,
    summary="Compare two quote versions",
    description="Field by field (old value, new value, percent change) with a human summary "
    'such as "Price reduced 6%, lead time reduced 2 days".',
    responses=READ,
)
def diff_quotes(
    deal_id: str,
    uow: UoW,
    user: CurrentUser,
    from_version: Annotated[int, Query(alias="from", ge=1, le=sc.MAX_INT)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=sc.MAX_INT)],
) -> Response:
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    rows = {v.number: v for v in deals.load_versions(uow.session, deal.id)}
    for name, number in (("from", from_version), ("to", to_version)):
        if number not in rows:
            have = f"1 to {max(rows)}" if rows else "none yet"
            raise InvalidRequest(
                f"This deal has no quote version {number} (versions: {have}).",
                field=name,
                rule="VERSION",
            )
    change = diff(deals.version_of(rows[from_version]), deals.version_of(rows[to_version]))
    return json_response(change.to_json())


# --- messages -----------------------------------------------------------------------------


def _message_json(msg: m.Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "author_id": msg.author_id,
        "body": msg.body,
        "created_at": iso(msg.created_at),
    }


@router.get(
    "/{deal_id}/messages",
    response_model=sc.MessagePage,
    summary="List messages",
    description="The deal's messages, oldest first; page with `limit` and `cursor`.",
    responses=READ,
)
def list_messages(
    deal_id: str,
    uow: UoW,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    rows, next_cursor = deals.list_messages(
        uow.session, user, deal_id=deal_id, limit=limit, cursor=cursor
    )
    return json_response({"items": [_message_json(x) for x in rows], "next_cursor": next_cursor})


@router.post(
    "/{deal_id}/messages",
    status_code=201,
    response_model=sc.MessageRead,
    summary="Post a message",
    description="Free text in the deal room. It is on the record (a MESSAGE_POSTED event) but "
    "never changes the deal's state or version.",
    responses=problems(401, 404, 422),
    dependencies=[Depends(idempotent_write)],
)
def post_message(deal_id: str, body: sc.MessageCreate, uow: UoW, user: CurrentUser) -> Response:
    msg = deals.post_message(uow, user, deal_id=deal_id, body=body.body)
    return answer(uow, _message_json(msg), 201)


# --- audit trail --------------------------------------------------------------------------


@router.get(
    "/{deal_id}/events",
    response_model=sc.EventPage,
    summary="List audit events",
    description="The deal's hash-chained events after sequence `after`, in order.",
    responses=READ,
)
def list_events(
    deal_id: str,
    uow: UoW,
    user: CurrentUser,
    after: Annotated[int, Query(ge=0, le=sc.MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    rows = trail.events_after(uow.session, deal.id, after=after, limit=limit + 1)
    page = rows[:limit]
    return json_response(
        {
            "items": [feed.event_json(e) for e in page],
            "next_after": page[-1].seq if page else after,
            "has_more": len(rows) > limit,
        }
    )


@router.get(
    "/{deal_id}/audit/verify",
    response_model=sc.AuditVerification,
    summary="Verify the hash chain",
    description="Recompute the deal's chain; `first_bad_seq` names the first event whose "
    "link or hash does not hold.",
    responses=READ,
)
def verify_audit(deal_id: str, uow: UoW, user: CurrentUser) -> Response:
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    return json_response(chain.verify_deal(uow.session, deal).to_json())


EXPORT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


@router.get(
    "/{deal_id}/audit/export",
    summary="Export the audit trail",
    description="The whole trail as a file: `json` (the deal, its verification and every "
    "event) or `csv` (one event per row). PDF export is not available yet (422 NEG-016).",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The trail, as an attachment named `<ref>-audit.json|csv`.",
            "content": {"application/json": {}, "text/csv": {}},
        },
        **READ,
    },
)
def export_audit(
    deal_id: str,
    request: Request,
    uow: UoW,
    user: CurrentUser,
    fmt: Annotated[Literal["json", "csv", "pdf"], Query(alias="format")] = "json",
) -> Response:
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    if fmt == "pdf":
        raise InvalidRequest(
            "PDF export is not available yet; use format=json or format=csv.",
            field="format",
            rule="EXPORT",
        )
    db: Database = request.app.state.db
    return StreamingResponse(
        trail.export(db, deal.id, fmt),
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{deal.ref}-audit.{fmt}"'},
    )
