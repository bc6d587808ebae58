"""What every page shares: templates, the signed-in user, CSRF, rendering, page errors.

Sign-in. `/login` trades the form's email and password for the same signed token the API
gives out and keeps it in the `dealroom_token` cookie (HttpOnly; Secure over HTTPS), which
`api.deps` also reads, so the pages' scripts call the JSON API and open the SSE streams
with it. The cookie is `SameSite=Lax`, not `Strict`: a link to a deal in an email or a
chat must open the deal room signed in on the first click.

CSRF, two independent checks on every form post:

1. Origin: a post whose `Origin` (or, without one, `Referer`) names another host is
   refused. Browsers send `Origin` on every cross-site POST.
2. A synchronizer token bound to the session: each form carries
   `csrf = HMAC-SHA256(signing key, "csrf:" + session token)`. A page on another site can
   neither read it nor compute it, and it changes with every sign-in. It needs no second
   cookie and no server-side store.

`SameSite=Lax` already keeps the cookie off cross-site POSTs in current browsers; the two
checks hold without it. The JSON API needs no token: a cross-site page can only send it a
"simple" request (form-encoded or text/plain), which its JSON bodies refuse, and it sends
no CORS headers, so a JSON request from another origin never gets past the preflight.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select

from dealroom.db import models as m
from dealroom.domain.errors import DealroomError, NotAuthenticated
from dealroom.security import signing_key
from dealroom.services import accounts
from dealroom.services.notifications import bell
from dealroom.services.uow import UnitOfWork
from dealroom.web import formatting

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
COOKIE = "dealroom_token"


def _static_versions() -> dict[str, str]:
    """A content hash per static file, so a new release is never served from a stale cache."""
    out = {}
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            rel = path.relative_to(STATIC_DIR).as_posix()
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return out


_VERSIONS = _static_versions()


def static_url(name: str) -> str:
    version = _VERSIONS.get(name)
    return f"/static/{name}" + (f"?v={version}" if version else "")


def humanize(name: Any) -> str:
    """`close-requested` → `Close requested`; `QUOTE_SENT` → `Quote sent`."""
    text = str(name or "").replace("-", " ").replace("_", " ").strip().lower()
    return text[:1].upper() + text[1:]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.filters["humanize"] = humanize
    return env


templates = Jinja2Templates(env=_environment())


def is_staff(user: m.User | None) -> bool:
    return user is not None and accounts.is_staff(user)


# --- errors a page raises -------------------------------------------------------------


class LoginRequired(Exception):
    """The page needs a signed-in user: the handler redirects to /login."""

    def __init__(self, next_path: str, *, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


@dataclass
class PageError(Exception):
    """A friendly error page: a title and a sentence, never a stack trace."""

    status: int
    title: str
    message: str


# --- the signed-in user ---------------------------------------------------------------


def session_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def page_user(request: Request, uow: UnitOfWork) -> m.User | None:
    """The user behind the session cookie; None when signed out or the cookie is stale."""
    from dealroom.edge.caller import load_caller

    token = session_token(request)
    if token is None:
        return None
    try:
        user = load_caller(uow, token)
    except NotAuthenticated:
        request.state.stale_cookie = True
        return None
    if user is not None and user.blocked:
        request.state.stale_cookie = True
        return None
    return user


def require_user(request: Request, uow: UnitOfWork) -> m.User:
    user = page_user(request, uow)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path, expired=bool(getattr(request.state, "stale_cookie", False)))
    return user


# --- CSRF -----------------------------------------------------------------------------


def csrf_token(uow: UnitOfWork, token: str | None) -> str:
    if not token:
        return ""
    key = signing_key(uow.session, uow.config.secret_key)
    return hmac.new(key.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def check_origin(request: Request) -> None:
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return  # neither header: not a browser's cross-site post; the token still guards
    if source == "null" or urlsplit(source).netloc != host:
        raise PageError(
            403,
            "This form came from another site",
            "For your safety the form was not sent. Open dealroom directly and try again.",
        )


def check_csrf(request: Request, uow: UnitOfWork, form: dict[str, str]) -> None:
    check_origin(request)
    expected = csrf_token(uow, session_token(request))
    if not expected or not hmac.compare_digest(expected, form.get("csrf", "")):
        raise PageError(
            403,
            "This form has expired",
            "The page was open from an earlier sign-in. Reload it and send the form again.",
        )


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields as text (the last value of a repeated name); files are ignored."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# --- rendering ------------------------------------------------------------------------


def viewer_formatter(request: Request, uow: UnitOfWork, user: m.User | None) -> Any:
    if user is not None:
        return formatting.formatter(user.locale, user.timezone, uow.now)
    locale = formatting.locale_from_header(request.headers.get("accept-language"))
    return formatting.formatter(locale, "UTC", uow.now)


def stream_cursor(uow: UnitOfWork, user: m.User) -> str:
    """Where `/v1/me/stream` should resume for a page rendered now: nothing is missed
    between the render and the stream's first connection."""
    feed = uow.session.execute(select(func.coalesce(func.max(m.Event.feed_seq), 0))).scalar_one()
    return f"{int(feed)}.{bell.head(uow.session, user.id)}"


def base_context(request: Request, uow: UnitOfWork, user: m.User | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "request": request,
        "user": user,
        "staff": is_staff(user),
        "fmt": viewer_formatter(request, uow, user),
        "csrf": csrf_token(uow, session_token(request)) if user is not None else "",
        "unread": 0,
        "me_cursor": "",
        "nav": "",
        "flash": request.query_params.get("flash", ""),
    }
    if user is not None:
        ctx["unread"] = bell.unread_count(uow.session, user.id)
        ctx["me_cursor"] = stream_cursor(uow, user)
    return ctx


def render(
    request: Request,
    uow: UnitOfWork,
    user: m.User | None,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    ctx = base_context(request, uow, user)
    ctx.update(context or {})
    response = templates.TemplateResponse(request, template, ctx, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if getattr(request.state, "stale_cookie", False):
        response.delete_cookie(COOKIE, path="/")
    return response


def wants_json(request: Request) -> bool:
    """The page's script sent the form (it shows the answer without a reload)."""
    return request.headers.get("x-requested-with") == "dealroom"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def done(request: Request, url: str) -> Response:
    """A form post succeeded: a redirect for the browser, or its target for the script."""
    if wants_json(request):
        return JSONResponse({"ok": True, "redirect": url})
    return redirect(url)


def refusal(exc: DealroomError) -> dict[str, Any]:
    """A refused move, shaped for a form: the sentence, and one per offending field."""
    fields: dict[str, str] = {}
    for p in exc.problems:
        fields.setdefault(p.field, p.message)
    if exc.field and exc.field not in fields:
        fields[exc.field] = exc.detail
    return {
        "ok": False,
        "status": exc.status,
        "code": exc.code,
        "rule": exc.rule,
        "title": exc.title,
        "detail": exc.detail,
        "fields": fields,
        "current_version": exc.context.get("current_version"),
    }


def login_redirect(next_path: str, *, expired: bool) -> RedirectResponse:
    url = "/login?next=" + quote(next_path, safe="/")
    if expired:
        url += "&expired=1"
    response = redirect(url)
    response.delete_cookie(COOKIE, path="/")
    return response
