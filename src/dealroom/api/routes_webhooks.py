"""Webhooks: endpoints that receive signed deliveries of committed events (admins and
operators). Signing and retries: docs/webhooks.md and dealroom/notify/webhooks.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from dealroom.api.schemas import (
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)
from dealroom.edge.caller import CurrentUser, require_staff
from dealroom.edge.idempotency import Idempotent
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW, answer
from dealroom.services import cursors
from dealroom.services.notifications import webhooks

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=NEEDS_TOKEN)

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller is neither admin nor operator (NEG-008)."}
}
MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "No such webhook (NEG-011)."}}


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    dependencies=[Idempotent],
    responses=FORBIDDEN,
)
def create_webhook(body: WebhookCreate, uow: UoW, user: CurrentUser) -> Response:
    """Register an endpoint for the event types in `events` (`"*"`: all). It receives the
    events committed from now on; the answer carries the signing `secret`, shown once."""
    require_staff(user)
    hook = webhooks.create(uow, user, url=body.url, events=body.events)
    created = WebhookCreated(
        id=hook.id, url=hook.url, events=hook.events, created_at=hook.created_at, secret=hook.secret
    )
    return answer(uow, created.model_dump(mode="json"), 201)


@router.get("/webhooks", response_model=WebhookList, responses=FORBIDDEN)
def list_webhooks(uow: UoW, user: CurrentUser) -> WebhookList:
    """The registered endpoints (never their secrets)."""
    require_staff(user)
    return WebhookList(items=[WebhookRead.model_validate(h) for h in webhooks.listed(uow.session)])


@router.delete("/webhooks/{webhook_id}", status_code=204, responses={**FORBIDDEN, **MISSING})
def delete_webhook(webhook_id: str, uow: UoW, user: CurrentUser) -> Response:
    """Stop deliveries to this endpoint; pending ones are cancelled."""
    require_staff(user)
    webhooks.delete(uow, webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses={**FORBIDDEN, **MISSING},
)
def list_deliveries(
    webhook_id: str,
    uow: UoW,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: DeliveryStatus | None = None,
) -> DeliveryPage:
    """The delivery log, newest event first: each delivery's status, attempts, last HTTP
    status or error, and every attempt with its time and duration."""
    require_staff(user)
    rows = webhooks.deliveries(
        uow.session,
        webhook_id,
        limit=limit,
        before=cursors.position(cursor) if cursor is not None else None,
        status=status,
    )
    return DeliveryPage(
        items=[DeliveryRead.model_validate(d) for d in rows],
        next_cursor=cursors.encode(rows[-1].feed_seq) if len(rows) == limit else None,
    )
