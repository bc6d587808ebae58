"""Deal routes: open a deal, list and read deals, fire transitions, quotes and their
differences, messages, the audit trail (events, verification, export).

Thin routes: parse, authenticate, call one service, render with `services.views`. The unit
of work commits before the answer leaves; writes honour `Idempotency-Key` (not on dry runs,
which write nothing and so have nothing to replay).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool

from dealroom.api import schemas_deals as sc
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import InvalidRequest
from dealroom.domain.quotes import diff
from dealroom.domain.state import Payload
from dealroom.edge.caller import CurrentUser
from dealroom.edge.idempotency import idempotent, in_one_trip
from dealroom.edge.uow import UoW, answer, json_response
from dealroom.services import audit, deals, views
from dealroom.services.accounts import Caller
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork, session_scope

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


# --- rendering ----------------------------------------------------------------------------


def _render(uow: UnitOfWork, result: deals.DealResult, *, version: int | None = None) -> Any:
    timers = None
    if result.outcome is not None:
        # A move replaces every pending timer of the deal with those of its outcome
        # (deals.persist), so its deadlines are known without reading them back; a dry
        # run's are those its move would set, not the stored ones.
        drafts = sorted(result.outcome.timers, key=lambda t: t.due_at)
        timers = [
            m.Timer(deal_id=result.deal.id, kind=t.kind, name=t.name, due_at=t.due_at,
                    state=t.state, rule=t.rule, event=t.event, status="pending")
            for t in drafts
        ]  # fmt: skip
    return views.deal_json(
        uow.session,
        result.deal,
        result.state,
        result.process,
        result.role,
        fee_config=uow.config.fees,
        version=version,
        now=uow.now,
        timers=timers,
        trust_max_age=uow.config.trust_cache_seconds,
        around=result.around,
    )


def _payload(body: sc.DealCreate | sc.TransitionCreate, data: dict[str, Any]) -> Payload:
    return Payload(
        terms=body.terms.given() if body.terms is not None else None,
        message=body.message,
        reason=body.reason,
        data=data,
    )


def _read_deal(uow: UnitOfWork, user: m.User, deal_id: str) -> deals.DealResult:
    deal, role, around = deals.get_deal_view(uow.session, deal_id, user)
    process = get_process(uow.session, deal.process_name, deal.process_version)
    state = deals.engine_state(uow, deal, process)
    return deals.DealResult(deal, state, process, role, around=around)


# --- cursors ------------------------------------------------------------------------------


def _encode_cursor(at: datetime, row_id: str) -> str:
    raw = json.dumps([audit.iso(at), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        if when.tzinfo is None or not isinstance(row_id, str):
            raise ValueError("naive time or bad id")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            "This cursor is not one this API gave out; start again without it.",
            field="cursor",
        ) from exc
    return when, row_id


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
            return json_response({**_render(uow, result), "dry_run": True})
        return answer(uow, _render(uow, result), 201)

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
    stmt = select(m.Deal)
    if role == "buyer":
        stmt = stmt.where(m.Deal.buyer_id == user.id)
    elif role == "seller":
        stmt = stmt.where(m.Deal.seller_id == user.id)
    elif not deals.STAFF_ROLES & set(user.roles or []):
        stmt = stmt.where(or_(m.Deal.buyer_id == user.id, m.Deal.seller_id == user.id))
    if state is not None:
        stmt = stmt.where(m.Deal.state == state)
    if process is not None:
        stmt = stmt.where(m.Deal.process_name == process)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        stmt = stmt.where(
            or_(m.Deal.updated_at < at, and_(m.Deal.updated_at == at, m.Deal.id < last_id))
        )
    stmt = stmt.order_by(m.Deal.updated_at.desc(), m.Deal.id.desc()).limit(limit + 1)
    rows = list(uow.session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1].updated_at, page[-1].id) if more else None
    return json_response({"items": _list_items(uow, user, page), "next_cursor": next_cursor})


def _list_items(uow: UnitOfWork, user: m.User, rows: list[m.Deal]) -> list[dict[str, Any]]:
    """Render a page of deals with a fixed number of queries, whatever its length."""
    items = []
    for page in views.load_page(uow, rows):
        deal, state, handoff = page.deal, page.state, page.handoff
        current = state.current
        items.append(
            {
                "id": deal.id,
                "ref": deal.ref,
                "process": {"name": deal.process_name, "version": deal.process_version},
                "state": deal.state,
                "version": deal.version,
                "listing_id": deal.listing_id,
                "listing_title": deal.listing_snapshot.get("title", ""),
                "buyer": views.party(page.buyer),
                "seller": views.party(page.seller),
                "viewer_role": _viewer_role(deal, user),
                "current_quote": None
                if current is None
                else {
                    "version": current.number,
                    "created_by_role": current.created_by_role,
                    "unit_price": str(current.terms.unit_price),
                    "quantity": current.terms.quantity,
                    "total_price": str(current.terms.total),
                    "currency": current.terms.currency,
                    "status": current.status,
                },
                "round": state.round,
                "order_ref": handoff["order_ref"] if handoff else None,
                "next_step": page.next_step,
                "created_at": audit.iso(deal.created_at),
                "updated_at": audit.iso(deal.updated_at),
                "closed_at": audit.iso(deal.closed_at) if deal.closed_at else None,
            }
        )
    return items


def _viewer_role(deal: m.Deal, user: m.User) -> str:
    if user.id == deal.buyer_id:
        return "buyer"
    if user.id == deal.seller_id:
        return "seller"
    return "operator"


@router.get(
    "/{deal_id}",
    response_model=sc.DealRead,
    summary="Read a deal",
    description="The deal as the caller sees it, with the moves the caller may make now.",
    responses=READ,
)
def read_deal(deal_id: str, uow: UoW, user: CurrentUser) -> Response:
    return json_response(_render(uow, _read_deal(uow, user, deal_id)))


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
            would_be = _render(uow, result, version=result.deal.version + 1)
            return json_response({**would_be, "dry_run": True})
        return answer(uow, _render(uow, result), 200)

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
        "created_at": audit.iso(msg.created_at),
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
    deal, _ = deals.get_deal(uow.session, deal_id, user)
    stmt = select(m.Message).where(m.Message.deal_id == deal.id)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        stmt = stmt.where(
            or_(m.Message.created_at > at, and_(m.Message.created_at == at, m.Message.id > last_id))
        )
    stmt = stmt.order_by(m.Message.created_at, m.Message.id).limit(limit + 1)
    rows = list(uow.session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return json_response({"items": [_message_json(x) for x in page], "next_cursor": next_cursor})


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
    rows = list(
        uow.session.scalars(
            select(m.Event)
            .where(m.Event.deal_id == deal.id, m.Event.seq > after)
            .order_by(m.Event.seq)
            .limit(limit + 1)
        )
    )
    page = rows[:limit]
    return json_response(
        {
            "items": [audit.event_json(e) for e in page],
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
    return json_response(audit.verify_deal(uow.session, deal).to_json())


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
        _export(db, deal.id, fmt),
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{deal.ref}-audit.{fmt}"'},
    )


def _export(db: Database, deal_id: str, fmt: str) -> Iterator[str]:
    """Stream from a session of its own: the request's unit of work has ended by now."""
    with session_scope(db, write=False) as s:
        if not db.is_sqlite:
            # The verification and the events come from one snapshot.
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        deal = s.get(m.Deal, deal_id)
        if deal is None:
            return
        if fmt == "csv":
            yield from audit.export_csv(audit.deal_events(s, deal_id))
        else:
            verification = audit.verify_deal(s, deal)
            yield from audit.export_json(deal, audit.deal_events(s, deal_id), verification)
