"""The web deal room: server-rendered pages (Jinja2) over the same services as the API.

`install(app)` adds the pages and the static files, and puts friendly HTML error pages in
front of the API's problem+json handlers for every path that is not the API's: a page
never shows raw JSON or a stack trace.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dealroom.domain.errors import DealroomError, NotAuthenticated
from dealroom.web.core import STATIC_DIR, LoginRequired, PageError, login_redirect, templates

log = logging.getLogger("dealroom.web")

#: Paths that belong to the JSON API and the tooling around it, not to pages.
API_PREFIXES = ("/v1/", "/docs", "/openapi.json", "/healthz", "/metrics", "/static/")

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]

MESSAGES = {
    400: ("That request did not look right", "Go back, check what you entered and try again."),
    403: ("You can't do that", "Your account is not allowed to open this page."),
    404: ("Page not found", "There is nothing here, or it is not yours to see."),
    405: ("That request did not look right", "This page does not take that kind of request."),
    409: ("That move is not possible now", "The deal moved on. Reload it and decide again."),
    500: ("Something went wrong on our side", "It has been logged. Try again in a moment."),
    503: ("Temporarily unavailable", "The service is busy or restarting; try again shortly."),
}


def is_page(request: Request) -> bool:
    path = request.url.path
    return not (path == "/v1" or path.startswith(API_PREFIXES))


def error_page(request: Request, status: int, title: str = "", message: str = "") -> Response:
    default_title, default_message = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    ctx = {"status": status, "title": title or default_title, "message": message or default_message}
    try:
        response: Response = templates.TemplateResponse(
            request, "error.html", ctx, status_code=status
        )
    except Exception:  # the error page must never fail in turn
        log.exception("error page failed to render")
        response = HTMLResponse(
            f"<!doctype html><title>{status}</title><h1>{ctx['title']}</h1>", status_code=status
        )
    if request.headers.get("x-requested-with") == "dealroom":
        return JSONResponse(
            {"ok": False, "status": status, "title": ctx["title"], "detail": ctx["message"],
             "fields": {}},
            status_code=status,
        )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        return await result
    return result


def install(app: FastAPI) -> None:
    from dealroom.web import routes_pages, routes_room

    app.include_router(routes_pages.router)
    app.include_router(routes_room.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    api: dict[Any, Handler] = dict(app.exception_handlers)

    async def on_dealroom_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await _call(api[DealroomError], request, exc)
        assert isinstance(exc, DealroomError)
        if isinstance(exc, NotAuthenticated):
            return login_redirect(request.url.path, expired=True)
        message = exc.detail if exc.status < 500 else ""
        if exc.status == 404:
            message = "There is nothing here, or it is not yours to see."
        return error_page(request, exc.status, message=message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await _call(api[StarletteHTTPException], request, exc)
        assert isinstance(exc, StarletteHTTPException)
        return error_page(request, exc.status_code)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await _call(api[RequestValidationError], request, exc)
        return error_page(request, 400)

    async def on_login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        if request.headers.get("x-requested-with") == "dealroom":
            return JSONResponse(
                {"ok": False, "status": 401, "detail": "Your session has ended; sign in again.",
                 "redirect": "/login?expired=1", "fields": {}},
                status_code=401,
            )  # fmt: skip
        return login_redirect(exc.next_path, expired=exc.expired)

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return error_page(request, exc.status, exc.title, exc.message)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await _call(api.get(DBAPIError, api[Exception]), request, exc)
        if isinstance(exc, IntegrityError):
            return error_page(request, 409)
        if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
            log.warning("database unavailable: %s", exc)
            return error_page(request, 503)
        log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_page(request, 500)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await _call(api[Exception], request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_page(request, 500)

    app.add_exception_handler(DealroomError, on_dealroom_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(PageError, on_page_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
