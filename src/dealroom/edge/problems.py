"""One place that turns every failure into RFC 9457 problem+json.

Client mistakes get their NEG code; a lost database connection is NEG-010 with
Retry-After; anything unexpected is logged and answered as a plain 500 problem without
internals. Request validation (422) lists every offending field at once, with NEG-003 when
the fields are negotiation terms.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dealroom.domain.errors import DealroomError
from dealroom.edge.uow import Replay

log = logging.getLogger("dealroom.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://dealroom.dev/problems/"
TERM_FIELDS = {
    "terms", "unit_price", "quantity", "lead_time_days", "delivery_terms", "valid_until",
    "discount_percent", "notes", "message", "reason",
}  # fmt: skip

HTTP_CODES = {401: "NEG-012", 403: "NEG-008", 404: "NEG-011", 405: "NEG-016", 409: "NEG-007",
              429: "NEG-013", 503: "NEG-010"}  # fmt: skip


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "code": code,
            "detail": detail, **extra}  # fmt: skip
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _dealroom_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DealroomError)
    body = exc.to_problem()
    body["type"] = TYPE_BASE + exc.code
    body["instance"] = request.url.path
    headers = {}
    if "retry_after" in body:
        headers["Retry-After"] = str(body["retry_after"])
    return JSONResponse(body, status_code=exc.status, media_type=PROBLEM, headers=headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            errors.append(
                {
                    "field": "body",
                    "message": f"The body is not valid JSON: {err.get('ctx', {}).get('error', 'parse error')}.",
                    "type": "json_invalid",
                }
            )
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        errors.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid"),
                       "type": err.get("type")})  # fmt: skip
    concerns_terms = request.url.path.startswith("/v1/deals") and any(
        e["field"].split(".")[0] in TERM_FIELDS for e in errors
    )
    code = "NEG-003" if concerns_terms else "NEG-016"
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem(
        422,
        code,
        "Terms refused" if concerns_terms else "Invalid request",
        f"Fix these fields and resend: {fields}.",
        errors=errors,
        instance=request.url.path,
    )


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "NEG-016")
    detail = exc.detail if isinstance(exc.detail, str) else "Request refused."
    if exc.status_code == 404:
        detail = f"Nothing at {request.url.path}."
    return problem(exc.status_code, code, "Request refused", detail, instance=request.url.path)


def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    return Response(
        content=exc.body,
        status_code=exc.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def _database_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, IntegrityError):
        # A unique key raced us (a second order, a reused sequence): the deal moved on.
        return problem(
            409, "NEG-004", "The deal changed meanwhile",
            "Another change was saved first. Reload and try again.",
            instance=request.url.path,
        )  # fmt: skip
    if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
        log.warning("database unavailable: %s", exc)
        return problem(
            503, "NEG-010", "Service unavailable",
            "The database is unavailable; retry shortly.",
            retry_after=2, instance=request.url.path,
        )  # fmt: skip
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "NEG-500", "Internal error",
                   "Something went wrong on our side; it has been logged.",
                   instance=request.url.path)  # fmt: skip


def install(app: FastAPI) -> None:
    app.add_exception_handler(DealroomError, _dealroom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Replay, _replay)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


#: OpenAPI entry for routers whose routes need a bearer token.
NEEDS_TOKEN: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Not signed in, or the token expired, is forged or its user is gone "
        "(NEG-012).",
        "content": {
            PROBLEM: {
                "schema": {
                    "type": "object",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "code": {"type": "string", "examples": ["NEG-012"]},
                        "detail": {"type": "string"},
                    },
                }
            }
        },
    }
}
