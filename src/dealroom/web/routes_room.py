"""The deal room (`/deals/{id}`), its moves and messages, and the deal's audit timeline.

Every form works without JavaScript: a move posts, and the answer is a redirect back to
the room, or, when the move is refused, the room again with the form open, what the user
typed in it and the rule's sentence next to the field. The page's script sends the same
forms with `X-Requested-With: dealroom` and gets the outcome as JSON instead, so nothing
reloads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from dealroom.db import models as m
from dealroom.domain.errors import DealroomError
from dealroom.edge.uow import UoW
from dealroom.services import deals
from dealroom.services.audit import chain
from dealroom.services.uow import UnitOfWork
from dealroom.web import forms, room, timeline
from dealroom.web.core import (
    check_csrf,
    done,
    read_form,
    refusal,
    render,
    require_user,
    viewer_formatter,
    wants_json,
)

router = APIRouter(include_in_schema=False)

Form = Annotated[dict[str, str], Depends(read_form)]
#: Events the audit page lists at most; the export always holds all of them.
TIMELINE_LIMIT = 2000


def _room_page(
    request: Request,
    uow: UnitOfWork,
    user: m.User,
    deal_id: str,
    *,
    status: int = 200,
    open_form: str = "",
    values: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
    message_body: str = "",
    message_error: str = "",
) -> Response:
    fmt = viewer_formatter(request, uow, user)
    q = request.query_params
    r = room.load_room(uow, user, deal_id, fmt, diff_from=q.get("from"), diff_to=q.get("to"))
    if open_form and values is not None:
        r.forms = [forms.with_values(f, values) if f.name == open_form else f for f in r.forms]
    ctx = {
        "nav": "deals" if r.role != "operator" else "operator",
        "room": r,
        "open_form": open_form,
        "error": error,
        "message_body": message_body,
        "message_error": message_error,
    }
    return render(request, uow, user, "deal.html", ctx, status=status)


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_room(request: Request, uow: UoW, deal_id: str) -> Response:
    user = require_user(request, uow)
    return _room_page(request, uow, user, deal_id)


def _refused(request: Request, uow: UnitOfWork, exc: DealroomError) -> JSONResponse | None:
    """Undo what the refused move may have started; the script gets the refusal as JSON."""
    uow.session.rollback()
    uow.outbox.clear()
    if wants_json(request):
        return JSONResponse(refusal(exc), status_code=exc.status)
    return None


@router.post("/deals/{deal_id}/transitions/{name}", response_class=HTMLResponse)
def fire(request: Request, uow: UoW, deal_id: str, name: str, posted: Form) -> Response:
    user = require_user(request, uow)
    check_csrf(request, uow, posted)
    fmt = viewer_formatter(request, uow, user)
    deal, process, offered = room.load_forms(uow, user, deal_id, fmt)
    form = next((f for f in offered if f.name == name), None)
    if form is None and name in process.transitions:
        # Not offered to this viewer now (the turn passed, the state moved): the engine
        # says why, in its own words.
        t = process.transitions[name]
        form = forms.ActionForm(name, forms.title_of(process, name), forms.tone_of(t),
                                (forms.Field("message", "Message", "textarea"),))  # fmt: skip
    raw_version = posted.get("expected_version", "")
    expected = int(raw_version) if raw_version.isdigit() and len(raw_version) < 10 else -1
    try:
        if form is None:
            from dealroom.domain.errors import InvalidTransition

            raise InvalidTransition(
                f"'{name}' is not a move of the {process.name} process.", rule="STATE"
            )
        deals.fire_transition(
            uow, user, deal_id=deal.id, name=name, expected_version=expected,
            payload=forms.payload_from(form, posted, fmt),
        )  # fmt: skip
    except DealroomError as exc:
        answer = _refused(request, uow, exc)
        if answer is not None:
            return answer
        return _room_page(
            request, uow, user, deal_id, status=exc.status, open_form=name,
            values=posted, error=refusal(exc),
        )  # fmt: skip
    return done(request, f"/deals/{deal.id}")


@router.post("/deals/{deal_id}/messages", response_class=HTMLResponse)
def post_message(request: Request, uow: UoW, deal_id: str, posted: Form) -> Response:
    user = require_user(request, uow)
    check_csrf(request, uow, posted)
    body = posted.get("body", "")
    try:
        deals.post_message(uow, user, deal_id=deal_id, body=body)
    except DealroomError as exc:
        answer = _refused(request, uow, exc)
        if answer is not None:
            return answer
        return _room_page(request, uow, user, deal_id, status=exc.status, message_body=body,
                          message_error=exc.detail)  # fmt: skip
    return done(request, f"/deals/{deal_id}#messages")


@router.get("/deals/{deal_id}/audit", response_class=HTMLResponse)
def audit_page(request: Request, uow: UoW, deal_id: str) -> Response:
    user = require_user(request, uow)
    s = uow.session
    deal, role = deals.get_deal(s, deal_id, user)
    verification = chain.verify_deal(s, deal)
    events = list(
        s.scalars(
            select(m.Event)
            .where(m.Event.deal_id == deal.id)
            .order_by(m.Event.seq)
            .limit(TIMELINE_LIMIT + 1)
        )
    )
    more = len(events) > TIMELINE_LIMIT
    events = events[:TIMELINE_LIMIT]
    actor_ids = {e.actor_id for e in events if e.actor_id} | {deal.buyer_id, deal.seller_id}
    users = {u.id: u for u in s.scalars(select(m.User).where(m.User.id.in_(actor_ids)))}
    fmt = viewer_formatter(request, uow, user)
    items = timeline.entries(events, deal, users, fmt)
    ctx = {
        "nav": "deals" if role != "operator" else "operator",
        "deal": deal,
        "role": role,
        "verification": verification,
        "items": items,
        "more": more,
        "plain": timeline.plain_text(deal, items),
        "buyer": users.get(deal.buyer_id),
        "seller": users.get(deal.seller_id),
    }
    return render(request, uow, user, "audit.html", ctx)
