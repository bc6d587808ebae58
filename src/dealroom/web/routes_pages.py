"""Pages around the deal room: home, sign-in, listings, my deals, the bell, the operator
console."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import or_, select

from dealroom.db import models as m
from dealroom.domain import permissions
from dealroom.domain.errors import BuyerBlocked, DealroomError, NotAuthenticated, NotFound
from dealroom.domain.state import DealState
from dealroom.edge.uow import UoW
from dealroom.security import issue_token, signing_key
from dealroom.services import accounts, deals, listings
from dealroom.services.notifications import bell
from dealroom.services.processes import get_process
from dealroom.services.uow import UnitOfWork
from dealroom.web import forms, queries
from dealroom.web.core import (
    COOKIE,
    PageError,
    check_csrf,
    check_origin,
    done,
    is_staff,
    page_user,
    read_form,
    redirect,
    refusal,
    render,
    require_user,
    viewer_formatter,
    wants_json,
)
from dealroom.web.room import trust_profiles

router = APIRouter(include_in_schema=False)

Form = Annotated[dict[str, str], Depends(read_form)]
LISTINGS_PER_PAGE = 24


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//evil.example` or a full URL."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# --- home and sign-in -------------------------------------------------------------------


def demo_logins(uow: UnitOfWork) -> list[Any]:
    """The sample logins, when this database holds the demo's people."""
    from dealroom.demo import data as demo_data

    emails = [p.email for p in demo_data.PEOPLE]
    present = set(uow.session.scalars(select(m.User.email).where(m.User.email.in_(emails))))
    return [p for p in demo_data.PEOPLE if p.email in present]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, uow: UoW) -> Response:
    user = page_user(request, uow)
    if user is None:
        return render(request, uow, None, "home_visitor.html", {"demo": demo_logins(uow)})
    stmt = (
        select(m.Deal)
        .where(or_(m.Deal.buyer_id == user.id, m.Deal.seller_id == user.id))
        .order_by(m.Deal.updated_at.desc())
        .limit(queries.PAGE_LIMIT)
    )
    rows = queries.deal_rows(uow, user, stmt)
    waiting = [r for r in queries.waiting_first(rows) if r.waiting_for_viewer]
    ctx = {
        "nav": "home",
        "waiting": waiting[:8],
        "recent": rows[:8],
        "counts": {
            "open": sum(1 for r in rows if not r.is_final),
            "waiting": len(waiting),
            "won": sum(1 for r in rows if r.order_ref),
        },
    }
    return render(request, uow, user, "home.html", ctx)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, uow: UoW, next: str | None = None) -> Response:
    user = page_user(request, uow)
    if user is not None:
        return redirect(safe_next(next))
    ctx = {
        "next": safe_next(next),
        "email": "",
        "error": "Your session has ended; sign in again."
        if request.query_params.get("expired")
        else "",
        "demo": demo_logins(uow),
        "nav": "login",
    }
    return render(request, uow, None, "login.html", ctx)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, uow: UoW, posted: Form) -> Response:
    check_origin(request)
    email = posted.get("email", "").strip()
    password = posted.get("password", "")
    target = safe_next(posted.get("next"))
    error = ""
    status = 200
    if not email or not password:
        error, status = "Enter your email and password.", 422
    else:
        try:
            user = accounts.authenticate(uow.session, email, password)
        except (NotAuthenticated, BuyerBlocked) as exc:
            error, status = exc.detail, exc.status
    if error:
        ctx = {"next": target, "email": email, "error": error, "demo": demo_logins(uow),
               "nav": "login"}  # fmt: skip
        return render(request, uow, None, "login.html", ctx, status=status)
    key = signing_key(uow.session, uow.config.secret_key)
    ttl = uow.config.token_ttl_seconds
    token, _ = issue_token(key, user.id, now=uow.now, ttl_seconds=ttl)
    response = redirect(target)
    response.set_cookie(
        COOKIE, token, max_age=ttl, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, uow: UoW) -> Response:
    user = page_user(request, uow)
    if user is None:
        return redirect("/")
    return render(request, uow, user, "logout.html")


@router.post("/logout")
def logout(request: Request, uow: UoW, posted: Form) -> Response:
    if page_user(request, uow) is not None:
        check_csrf(request, uow, posted)
    response = redirect("/")
    response.delete_cookie(COOKIE, path="/")
    return response


# --- listings ---------------------------------------------------------------------------


@router.get("/listings", response_class=HTMLResponse)
def listings_page(
    request: Request,
    uow: UoW,
    q: str | None = None,
    category: str | None = None,
    sale_mode: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
) -> Response:
    user = page_user(request, uow)
    query = listings.ListingQuery(
        q=(q or "").strip()[:200] or None,
        category=category or None,
        sale_mode=sale_mode if sale_mode in ("negotiable", "buy_now", "auction") else None,
        kind=kind if kind in ("sell", "buy") else None,
        limit=LISTINGS_PER_PAGE,
        cursor=cursor or None,
    )
    try:
        rows, next_cursor = listings.search_listings(uow.session, query)
    except DealroomError:  # a cursor this site did not give out: start over
        rows, next_cursor = listings.search_listings(uow.session, query.__class__(
            q=query.q, category=query.category, sale_mode=query.sale_mode, kind=query.kind,
            limit=LISTINGS_PER_PAGE))  # fmt: skip
    owners = {u.id: u for u in uow.session.scalars(
        select(m.User).where(m.User.id.in_({r.owner_id for r in rows})))}  # fmt: skip
    categories = sorted(
        c for c in uow.session.scalars(
            select(m.Listing.category).distinct().where(m.Listing.status == "active"))
        if c
    )  # fmt: skip
    ctx = {
        "nav": "listings",
        "rows": rows,
        "owners": owners,
        "counts": deals.offer_counts(uow.session, [r.id for r in rows]),
        "categories": categories,
        "query": query,
        "next_cursor": next_cursor,
    }
    return render(request, uow, user, "listings.html", ctx)


def _opening_forms(uow: UnitOfWork, user: m.User | None, listing: m.Listing) -> tuple[str, list[forms.ActionForm]]:  # fmt: skip
    """The opening moves the viewer may make on this listing, as forms."""
    if listing.status != "active":
        return "", []
    process = get_process(uow.session, listing.process)
    role = "buyer" if listing.kind == "sell" else "seller"
    snapshot = deals.snapshot_of(listing)
    seller_id = listing.owner_id if listing.kind == "sell" else (user.id if user else "")
    settings = deals.settings_for(
        uow, process, category=listing.category, seller_id=seller_id,
        listing_rules=listing.rules or None, deal_rules=None,
    )  # fmt: skip
    state = DealState(
        process=process.name, listing=deals.engine_listing(snapshot), settings=settings
    )
    fmt = formatter_for(uow, user)
    terms = {
        "unit_price": str(listing.unit_price),
        "quantity": listing.min_order_qty or listing.quantity,
    }
    names: list[tuple[str, str]] = []
    if user is None or user.id != listing.owner_id:
        names += [(n, role) for n in permissions.available_transitions(process, state, role)]
    if is_staff(user):
        names += [(n, "operator") for n in permissions.available_transitions(process, state, "operator")
                  if (n, role) not in names]  # fmt: skip
    out = []
    for name, as_role in names:
        form = forms.action_form(
            process, name, role=as_role, settings=settings, currency=listing.currency,
            terms=terms, fmt=fmt,
        )  # fmt: skip
        if as_role == "operator":
            form = forms.with_buyer(form)
        out.append(form)
    return role, out


def formatter_for(uow: UnitOfWork, user: m.User | None) -> Any:
    from dealroom.web import formatting

    return formatting.formatter(user.locale if user else None, user.timezone if user else None,
                                uow.now)  # fmt: skip


def _listing_context(
    request: Request, uow: UnitOfWork, user: m.User | None, listing: m.Listing
) -> dict[str, Any]:
    role, opening = _opening_forms(uow, user, listing)
    owner = uow.session.get(m.User, listing.owner_id)
    own_deals: list[queries.DealRow] = []
    if user is not None:
        stmt = (
            select(m.Deal)
            .where(m.Deal.listing_id == listing.id,
                   or_(m.Deal.buyer_id == user.id, m.Deal.seller_id == user.id))
            .order_by(m.Deal.updated_at.desc())
            .limit(queries.PAGE_LIMIT)
        )  # fmt: skip
        own_deals = queries.waiting_first(queries.deal_rows(uow, user, stmt))
    return {
        "nav": "listings",
        "listing": listing,
        "owner": owner,
        "trust": trust_profiles(uow, [listing.owner_id]).get(listing.owner_id),
        "offer_count": queries.offer_count(uow, listing.id),
        "role": role,
        "forms": opening,
        "own_deals": own_deals,
        "process": get_process(uow.session, listing.process),
        "open_form": "",
        "error": None,
    }


def _get_listing(uow: UnitOfWork, listing_id: str) -> m.Listing:
    try:
        return listings.get_listing(uow.session, listing_id)
    except NotFound:
        raise PageError(404, "No such listing", "This listing does not exist (any more).") from None


@router.get("/listings/{listing_id}", response_class=HTMLResponse)
def listing_page(request: Request, uow: UoW, listing_id: str) -> Response:
    user = page_user(request, uow)
    listing = _get_listing(uow, listing_id)
    return render(request, uow, user, "listing.html", _listing_context(request, uow, user, listing))


@router.post("/listings/{listing_id}/deals", response_class=HTMLResponse)
def open_deal(request: Request, uow: UoW, listing_id: str, posted: Form) -> Response:
    user = require_user(request, uow)
    check_csrf(request, uow, posted)
    listing = _get_listing(uow, listing_id)
    _, opening = _opening_forms(uow, user, listing)
    name = posted.get("transition", "")
    form = next((f for f in opening if f.name == name), None)
    if form is None:
        raise PageError(409, "That move is not open", "This listing does not take that move "
                        "from you now. Reload the listing to see what you can do.")  # fmt: skip
    fmt = viewer_formatter(request, uow, user)
    payload = forms.payload_from(form, posted, fmt)
    buyer_id = None
    try:
        if "buyer_email" in {f.name for f in form.fields}:
            buyer_id = forms.buyer_id_from(uow.session, posted.get("buyer_email", ""))
        result = deals.open_deal(
            uow, user, listing_id=listing.id, transition=name, payload=payload, buyer_id=buyer_id
        )
    except DealroomError as exc:
        uow.session.rollback()
        uow.outbox.clear()
        if wants_json(request):
            from fastapi.responses import JSONResponse

            return JSONResponse(refusal(exc), status_code=exc.status)
        listing = _get_listing(uow, listing_id)
        ctx = _listing_context(request, uow, user, listing)
        ctx["forms"] = [forms.with_values(f, posted) if f.name == name else f
                        for f in ctx["forms"]]  # fmt: skip
        ctx["open_form"] = name
        ctx["error"] = refusal(exc)
        return render(request, uow, user, "listing.html", ctx, status=exc.status)
    return done(request, f"/deals/{result.deal.id}")


# --- my deals ---------------------------------------------------------------------------


@router.get("/deals", response_class=HTMLResponse)
def my_deals(
    request: Request,
    uow: UoW,
    view: str | None = None,
    state: str | None = None,
    process: str | None = None,
) -> Response:
    user = require_user(request, uow)
    s = uow.session
    mine = or_(m.Deal.buyer_id == user.id, m.Deal.seller_id == user.id)
    if view not in ("buying", "selling"):
        buying = s.scalar(select(m.Deal.id).where(m.Deal.buyer_id == user.id).limit(1))
        selling = s.scalar(select(m.Deal.id).where(m.Deal.seller_id == user.id).limit(1))
        view = "selling" if selling and not buying else "buying"
    column = m.Deal.buyer_id if view == "buying" else m.Deal.seller_id
    stmt = select(m.Deal).where(column == user.id)
    if state:
        stmt = stmt.where(m.Deal.state == state)
    if process:
        stmt = stmt.where(m.Deal.process_name == process)
    stmt = stmt.order_by(m.Deal.updated_at.desc()).limit(queries.PAGE_LIMIT + 1)
    rows = queries.deal_rows(uow, user, stmt)
    more = len(rows) > queries.PAGE_LIMIT
    rows = queries.waiting_first(rows[: queries.PAGE_LIMIT])
    states = sorted(set(s.scalars(select(m.Deal.state).distinct().where(mine))))
    processes = sorted(set(s.scalars(select(m.Deal.process_name).distinct().where(mine))))
    ctx = {
        "nav": "deals",
        "view": view,
        "rows": rows,
        "more": more,
        "states": states,
        "processes": processes,
        "state": state or "",
        "process": process or "",
    }
    return render(request, uow, user, "deals.html", ctx)


# --- the bell ---------------------------------------------------------------------------


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, uow: UoW, cursor: str | None = None) -> Response:
    user = require_user(request, uow)
    try:
        page = bell.list_notifications(uow.session, user, limit=30, cursor=cursor,
                                       unread_only=False)  # fmt: skip
    except DealroomError:
        page = bell.list_notifications(uow.session, user, limit=30, cursor=None,
                                       unread_only=False)  # fmt: skip
    return render(request, uow, user, "notifications.html",
                  {"nav": "notifications", "page": page})  # fmt: skip


@router.post("/notifications/read")
def notifications_read(request: Request, uow: UoW, posted: Form) -> Response:
    user = require_user(request, uow)
    check_csrf(request, uow, posted)
    raw = posted.get("id", "")
    if raw.isdigit() and len(raw) < 19:
        bell.mark_read(uow, user, ids=[int(raw)], everything=False)
    else:
        bell.mark_read(uow, user, ids=None, everything=True)
    return done(request, safe_next(posted.get("next") or "/notifications"))


# --- operators --------------------------------------------------------------------------


@router.get("/operator", response_class=HTMLResponse)
def operator_console(
    request: Request,
    uow: UoW,
    state: str | None = None,
    process: str | None = None,
    q: str | None = None,
) -> Response:
    user = require_user(request, uow)
    if not is_staff(user):
        raise PageError(403, "Operators only", "The operator console is for the marketplace's "
                        "staff. Your own deals are under My deals.")  # fmt: skip
    s = uow.session
    stmt = select(m.Deal)
    if state:
        stmt = stmt.where(m.Deal.state == state)
    if process:
        stmt = stmt.where(m.Deal.process_name == process)
    needle = (q or "").strip().upper()[:40]
    if needle:
        stmt = stmt.where(m.Deal.ref.contains(needle, autoescape=True))
    stmt = stmt.order_by(m.Deal.updated_at.desc()).limit(queries.PAGE_LIMIT + 1)
    rows = queries.deal_rows(uow, user, stmt)
    ctx = {
        "nav": "operator",
        "rows": rows[: queries.PAGE_LIMIT],
        "more": len(rows) > queries.PAGE_LIMIT,
        "states": sorted(set(s.scalars(select(m.Deal.state).distinct()))),
        "processes": sorted(set(s.scalars(select(m.Deal.process_name).distinct()))),
        "state": state or "",
        "process": process or "",
        "q": q or "",
    }
    return render(request, uow, user, "operator.html", ctx)
