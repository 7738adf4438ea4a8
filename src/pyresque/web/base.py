"""What every endpoint of the dashboard shares: templates rendered with the CSRF token
and the flash message, the posted fields, the CSRF check, error answers and the
redirect back to the page a form came from."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from pyresque.client.resque import Resque
from pyresque.protocol import strict_json
from pyresque.protocol.connection import describe
from pyresque.version import __version__
from pyresque.web import format as web_format
from pyresque.web import svg as web_svg
from pyresque.web.auth import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Settings, same
from pyresque.web.endpoints import text_param

TEMPLATES = Path(__file__).with_name("templates")
FLASH = {
    "remove-queue": "Queue deleted ({n} job(s) removed).",
    "remove-job": "Job deleted.",
    "retry-failed": "Job queued again for a retry.",
    "remove-failed": "Failure removed.",
    "retry-all-failed": "Retrying the matching jobs in the background ({n} records to "
    "read); its progress is shown below.",
    "remove-all-failed": "Removing the matching failures in the background ({n} records "
    "to read); its progress is shown below.",
    "clear-failed": "Failed list cleared ({n} removed).",
    "clear-retried": "Removing the retried failures in the background ({n} records to "
    "read); its progress is shown below.",
    "resume-bulk": "Resumed in the background ({n} records left to read).",
    "enqueue-delayed": "Delayed job queued now.",
    "remove-delayed": "Delayed job deleted.",
    "cancel-job": "Job cancelled (a running one stops within about a second).",
}
ERRORS = {
    "stale": "Nothing was done: that item changed or is gone (a worker may have taken it). "
    "This is the current state.",
    "invalid": "Nothing was done: the request was incomplete or invalid.",
    "refused": "Redis refused that: a key it needs holds data of another type.",
}
NAV = (
    ("overview", "Overview", "/"),
    ("queues", "Queues", "/queues"),
    ("workers", "Workers", "/workers"),
    ("failed", "Failed", "/failed"),
    ("delayed", "Delayed", "/delayed"),
    ("workflows", "Workflows", "/workflows"),
    ("stats", "Stats", "/stats"),
)


def wants_json(request: Request) -> bool:
    """Whether the request is for the JSON API (errors then answer JSON too)."""
    return request.url.path.startswith(f"{request.scope.get('root_path', '')}/api")


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """An HttpOnly, SameSite=Lax cookie for the dashboard's path (Secure over HTTPS).

    Lax, not Strict: a link to the dashboard from elsewhere keeps the user signed
    in and keeps the CSRF cookie (so forms open in other tabs stay valid); a
    cross-site POST still carries neither.
    """
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=request.scope.get("root_path", "") or "/",
    )


def _parse_query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


class Base:
    """Rendering and form handling for one Resque namespace and one set of ``Settings``."""

    def __init__(self, resque: Resque, settings: Settings) -> None:
        self.resque = resque
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
        )
        self.env.filters.update(web_format.FILTERS)
        self.env.globals.update(
            chart=web_svg.throughput_chart,
            histogram=web_svg.histogram,
            stacked_bar=web_svg.stacked_bar,
            FLASH=FLASH,
            ERRORS=ERRORS,
            NAV=NAV,
            version=__version__,
        )

    # --- rendering ---------------------------------------------------------------------

    def _csrf(self, request: Request) -> tuple[str, str | None]:
        """The form token for this browser, and a new cookie to set if it had none."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie:
            cookie = fresh = secrets.token_urlsafe(32)
        return self.settings.csrf_token(cookie), fresh

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        token, fresh = self._csrf(request)

        def url(path: str, **params: Any) -> str:
            query = urlencode({k: v for k, v in params.items() if v not in (None, "", 0)})
            return f"{base}{path}" + (f"?{query}" if query else "")

        def item_url(kind: str, value: object, **params: Any) -> str:
            path, named = web_format.item_path(kind, value)
            return url(path, **named, **params)

        flash = None
        done, error = request.query_params.get("done"), request.query_params.get("error")
        if done in FLASH:
            count = request.query_params.get("n", "")
            n = int(count) if count.isascii() and count.isdigit() and len(count) < 16 else 0
            flash = {"kind": "ok", "text": FLASH[done].format(n=n)}
        elif error in ERRORS:
            flash = {"kind": "error", "text": ERRORS[error]}
        html = self.env.get_template(template).render(
            {
                "base": base,
                "url": url,
                "item_url": item_url,
                "item_path": web_format.item_path,
                "here": str(request.url.path)
                + (f"?{request.url.query}" if request.url.query else ""),
                "csrf_field": CSRF_FIELD,
                "csrf_token": token,
                "read_only": self.settings.read_only,
                "auth": request.scope.get("state", {}).get("auth"),
                "namespace": self.resque.namespace,
                "server": describe(self.resque.redis),
                "poll_ms": int(self.settings.poll_seconds * 1000),
                "flash": flash,
                "now": time.time(),
                "failed_count": None,
                "page": "",
                **context,
            }
        )
        response = HTMLResponse(html, status)
        if fresh:
            set_cookie(request, response, CSRF_COOKIE, fresh)
        return response

    def _error(self, request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"ok": False, "error": message}, status)
        return self.render(request, "error.html", {"title": "Error", "message": message}, status)

    async def _form(self, request: Request) -> dict[str, Any]:
        """The posted fields; a JSON body that is not a usable object gives none."""
        if request.headers.get("content-type", "").startswith("application/json"):
            try:  # strict_json: no lone surrogates, no nesting that exhausts the stack
                body = strict_json.loads(await request.body())
            except strict_json.BadJSON:
                return {}
            return body if isinstance(body, dict) else {}
        return dict(await request.form())

    def _csrf_ok(self, request: Request, form: Mapping[str, Any]) -> bool:
        if request.scope.get("state", {}).get("auth") == "bearer":
            return True  # a browser never adds a bearer header on its own: no CSRF possible
        cookie = request.cookies.get(CSRF_COOKIE)
        sent = request.headers.get(CSRF_HEADER) or text_param(form, CSRF_FIELD)
        return bool(cookie and sent) and same(sent, self.settings.csrf_token(cookie or ""))

    def _back(self, request: Request, form: Mapping[str, Any], **params: Any) -> Response:
        """Redirect (303) to the form's ``next`` page, which must be one of ours."""
        base = request.scope.get("root_path", "")
        target = text_param(form, "next")
        if not target.startswith(f"{base}/") or target.startswith("//") or "\\" in target:
            target = f"{base}/"
        path, _, query = target.partition("?")
        kept = [(k, v) for k, v in _parse_query(query) if k not in ("done", "error", "n")]
        query = urlencode(kept + [(k, str(v)) for k, v in params.items()])
        return RedirectResponse(f"{path}?{query}", 303)
