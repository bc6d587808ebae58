"""Listings: what is offered (`kind=sell`) or wanted (`kind=buy`). Public to read; the
owner edits. Deals freeze a snapshot when they open, so edits never reach open deals."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from dealroom.api.schemas import (
    Kind,
    ListingCreate,
    ListingPage,
    ListingRead,
    ListingUpdate,
    SaleMode,
)
from dealroom.db import models as m
from dealroom.edge.caller import CurrentUser
from dealroom.edge.idempotency import Idempotent
from dealroom.edge.problems import NEEDS_TOKEN
from dealroom.edge.uow import UoW, answer
from dealroom.services import deals, listings

router = APIRouter(prefix="/v1/listings", tags=["listings"], responses=NEEDS_TOKEN)


def listing_read(row: m.Listing, offer_count: int) -> ListingRead:
    return ListingRead.model_validate(row).model_copy(update={"offer_count": offer_count})


@router.post(
    "",
    status_code=201,
    response_model=ListingRead,
    dependencies=[Idempotent],
    responses={422: {"description": "Invalid fields, all listed (NEG-016)."}},
)
def create_listing(body: ListingCreate, uow: UoW, user: CurrentUser) -> Response:
    """Publish a listing owned by the caller. `process` defaults to `market`; `rules`
    override the process's rule settings for deals on this listing."""
    row = listings.create_listing(uow.session, user, body.model_dump(), uow.now)
    return answer(uow, listing_read(row, 0).model_dump(mode="json"), 201)


@router.get("", response_model=ListingPage)
def list_listings(
    uow: UoW,
    q: Annotated[
        str | None, Query(max_length=200, description="Words in title or description.")
    ] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    kind: Kind | None = None,
    sale_mode: SaleMode | None = None,
    owner_id: Annotated[str | None, Query(max_length=36)] = None,
    status: Literal["active", "paused", "closed", "all"] = "active",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListingPage:
    """Listings, newest first; active ones unless `status` says otherwise. Each shows its
    offer count (open deals)."""
    rows, next_cursor = listings.search_listings(
        uow.session,
        listings.ListingQuery(
            q=q, category=category, kind=kind, sale_mode=sale_mode, owner_id=owner_id,
            status=None if status == "all" else status, limit=limit, cursor=cursor,
        ),
    )  # fmt: skip
    counts = deals.offer_counts(uow.session, [r.id for r in rows])
    return ListingPage(
        items=[listing_read(r, counts.get(r.id, 0)) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{listing_id}",
    response_model=ListingRead,
    responses={404: {"description": "No such listing (NEG-011)."}},
)
def get_listing(listing_id: str, uow: UoW) -> ListingRead:
    """One listing with its offer count."""
    row = listings.get_listing(uow.session, listing_id)
    return listing_read(row, deals.offer_counts(uow.session, [row.id]).get(row.id, 0))


@router.patch(
    "/{listing_id}",
    response_model=ListingRead,
    dependencies=[Idempotent],
    responses={
        403: {"description": "Not the owner (NEG-008)."},
        404: {"description": "No such listing (NEG-011)."},
    },
)
def update_listing(listing_id: str, body: ListingUpdate, uow: UoW, user: CurrentUser) -> Response:
    """The owner (or an admin) edits; only the fields sent change. Snapshots in open deals
    stay as they were; `status: closed` (or `paused`) stops new deals."""
    row = listings.update_listing(uow.session, user, listing_id, body.changes(), uow.now)
    count = deals.offer_counts(uow.session, [row.id]).get(row.id, 0)
    return answer(uow, listing_read(row, count).model_dump(mode="json"))
