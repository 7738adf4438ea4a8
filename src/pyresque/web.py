"""The web dashboard: an ASGI app (Starlette + Jinja2) for one Resque namespace.

``create_app(...)`` returns the app, to run on its own (``serve``, ``pyresque web``)
or to mount inside another ASGI app. Pages and the JSON API share one data layer
(``web_data``); actions are POSTs that need a CSRF token; Jinja2 autoescaping and
a strict Content-Security-Policy keep job data inert; bearer-token or basic auth
guard everything but the static files and the login form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import redis
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyresque import __version__, metrics, web_data, web_svg
from pyresque.client import Resque
from pyresque.connection import describe, url_from_env
from pyresque.keys import DEFAULT_NAMESPACE

TEMPLATES = Path(__file__).with_name("web_templates")
STATIC = Path(__file__).with_name("static")
DEFAULT_PORT = 5678  # resque-web's
CSRF_COOKIE = "pyresque_csrf"
SESSION_COOKIE = "pyresque_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PER_PAGE = 20
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
FLASH = {
    "remove-queue": "Queue deleted ({n} job(s) removed).",
    "remove-job": "Job deleted.",
    "retry-failed": "Job queued again for a retry.",
    "remove-failed": "Failure removed.",
    "retry-all-failed": "{n} matching job(s) queued again for a retry.",
    "remove-all-failed": "{n} matching failure(s) removed.",
    "clear-failed": "Failed list cleared ({n} removed).",
    "clear-retried": "{n} retried failure(s) removed.",
}
ERRORS = {
    "stale": "Nothing was done: that item changed or is gone (a worker may have taken it). "
    "This is the current state.",
    "invalid": "Nothing was done: the request was incomplete or invalid.",
}
NAV = (
    ("overview", "Overview", "/"),
    ("queues", "Queues", "/queues"),
    ("workers", "Workers", "/workers"),
    ("failed", "Failed", "/failed"),
    ("delayed", "Delayed", "/delayed"),
    ("stats", "Stats", "/stats"),
)


class WebConfigError(ValueError):
    """The dashboard cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class Settings:
    """Who may do what: auth, read-only mode, and the key that signs CSRF tokens."""

    read_only: bool = False
    auth_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    secret: bytes = b""
    poll_seconds: float = 3.0

    @property
    def auth_required(self) -> bool:
        return bool(self.auth_token or self.basic_auth)

    def session_value(self) -> str:
        """The login cookie's value: derived from the token, never the token itself."""
        return hmac.new((self.auth_token or "").encode(), b"pyresque-session", "sha256").hexdigest()

    def authenticate(self, request: Request) -> str | None:
        """How the request is authenticated ("open", "bearer", "basic", "session") or None."""
        if not self.auth_required:
            return "open"
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if self.auth_token and scheme == "bearer" and _same(credentials.strip(), self.auth_token):
            return "bearer"
        if self.basic_auth and scheme == "basic" and self._basic_ok(credentials.strip()):
            return "basic"
        cookie = request.cookies.get(SESSION_COOKIE)
        if self.auth_token and cookie and _same(cookie, self.session_value()):
            return "session"
        return None

    def _basic_ok(self, credentials: str) -> bool:
        assert self.basic_auth is not None
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared, always, so the time taken does not tell which one was wrong.
        return _same(user, self.basic_auth[0]) & _same(password, self.basic_auth[1])

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)`` as a pair; None stays None."""
    if value is None or isinstance(value, tuple):
        return value
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise WebConfigError("basic auth must be given as USER:PASSWORD, both non-empty")
    return user, password


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond this machine without authentication."""
    if not is_loopback(host) and not settings.auth_required:
        raise WebConfigError(
            f"refusing to serve the dashboard on {host} without authentication: anyone who "
            "can reach that address could read job data and delete queues and failures. Pass "
            "--token TOKEN or --basic-auth USER:PASSWORD (env PYRESQUE_WEB_TOKEN / "
            "PYRESQUE_WEB_BASIC_AUTH), or bind to 127.0.0.1"
        )


# --- helpers for requests ---------------------------------------------------------------


def _rel_path(scope: Scope, prefix: str) -> str:
    """The request path below the app's mount point and URL prefix."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    return path or "/"


def _int(params: Mapping[str, Any], name: str, default: int = 0) -> int:
    try:
        return max(0, int(params.get(name, default)))
    except (TypeError, ValueError):
        return default


def _str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(f"{request.scope.get('root_path', '')}/api")


class _Guard:
    """ASGI middleware: authentication (when configured) and security headers."""

    _EXEMPT = ("/static/", "/login")

    def __init__(self, app: ASGIApp, settings: Settings, prefix: str, login: Any) -> None:
        self.app, self.settings, self.prefix, self.login = app, settings, prefix, login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if "/static/" not in scope.get("path", ""):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        rel = _rel_path(scope, self.prefix)
        # What the routes see below the URL prefix, so pages rendered here link correctly.
        request = Request({**scope, "root_path": scope.get("root_path", "") + self.prefix})
        method = self.settings.authenticate(request)
        scope.setdefault("state", {})["auth"] = method
        if method is None and not rel.startswith(self._EXEMPT):
            response = await self.login(request, rel)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


# --- the application ----------------------------------------------------------------------

Loader = Callable[[Resque, Mapping[str, Any]], dict[str, Any]]

#: page name -> (template, loader of its data from the query parameters)
PAGES: dict[str, tuple[str, Loader]] = {
    "overview": ("overview.html", lambda r, p: web_data.overview_page(r)),
    "queues": ("queues.html", lambda r, p: web_data.queues_page(r, _str(p, "q"))),
    "queue": (
        "queue.html",
        lambda r, p: web_data.queue_page(
            r, _str(p, "name"), _int(p, "start"), PER_PAGE, _str(p, "q")
        ),
    ),
    "workers": ("workers.html", lambda r, p: web_data.workers_page(r)),
    "failed": (
        "failed.html",
        lambda r, p: web_data.failed_page(
            r,
            _int(p, "start"),
            PER_PAGE,
            web_data.FailureFilter.of(_str(p, "queue"), _str(p, "class"), _str(p, "exception")),
        ),
    ),
    "delayed": ("delayed.html", lambda r, p: web_data.delayed_page(r, _int(p, "start"))),
    "stats": ("stats.html", lambda r, p: web_data.stats_page(r)),
}


def _filters(form: Mapping[str, Any]) -> web_data.FailureFilter:
    return web_data.FailureFilter.of(_str(form, "queue"), _str(form, "class"), _str(form, "exception"))


def _need(form: Mapping[str, Any], name: str) -> str:
    value = _str(form, name)
    if not value:
        raise ValueError(f"{name} is required")
    return value


def _index(form: Mapping[str, Any]) -> int:
    try:
        return int(_need(form, "index"))
    except ValueError as exc:
        raise ValueError("index must be an integer") from exc


def _one(count: int) -> int:
    """A single-item action that found nothing to act on."""
    if count == 0:
        raise web_data.Stale("nothing was done: the item is gone (a worker may have taken it)")
    return count


#: action name -> what it does with the posted fields; returns how many items it touched.
ACTIONS: dict[str, Callable[[Resque, Mapping[str, Any]], int]] = {
    "remove-queue": lambda r, f: web_data.remove_queue(r, _need(f, "queue")),
    "remove-job": lambda r, f: _one(
        web_data.remove_job(
            r, _need(f, "queue"), _str(f, "digest") or None, _str(f, "job_id") or None
        )
    ),
    "retry-failed": lambda r, f: _one(
        web_data.retry_failure(r, _index(f), _str(f, "digest") or None)
    ),
    "remove-failed": lambda r, f: _one(
        web_data.remove_failure(r, _index(f), _str(f, "digest") or None)
    ),
    "retry-all-failed": lambda r, f: web_data.retry_all(r, _filters(f)),
    "remove-all-failed": lambda r, f: web_data.remove_all(r, _filters(f)),
    "clear-failed": lambda r, f: web_data.clear_failed(r),
    "clear-retried": lambda r, f: web_data.clear_retried(r),
}


class Dashboard:
    """The endpoints, bound to one Resque namespace and one set of ``Settings``."""

    def __init__(self, resque: Resque, settings: Settings) -> None:
        self.resque = resque
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
        )
        self.env.filters.update(ago=fmt_ago, when=fmt_when, ms=fmt_ms, num=fmt_num, qpath=_qpath)
        self.env.globals.update(
            chart=web_svg.throughput_chart,
            histogram=web_svg.histogram,
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

        flash = None
        done, error = request.query_params.get("done"), request.query_params.get("error")
        if done in FLASH:
            flash = {"kind": "ok", "text": FLASH[done].format(n=_int(request.query_params, "n"))}
        elif error in ERRORS:
            flash = {"kind": "error", "text": ERRORS[error]}
        html = self.env.get_template(template).render(
            {
                "base": base,
                "url": url,
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
            response.set_cookie(
                CSRF_COOKIE,
                fresh,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path=base or "/",
            )
        return response

    def _error(self, request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"ok": False, "error": message}, status)
        return self.render(request, "error.html", {"title": "Error", "message": message}, status)

    async def _load(self, loader: Loader, params: Mapping[str, Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            data = loader(self.resque, params)
            return {"data": data, "failed_count": self.resque.failures.count()}

        return await run_in_threadpool(run)

    # --- pages and the read API -------------------------------------------------------

    async def page(self, request: Request) -> Response:
        name = request.scope["route"].name
        template, loader = PAGES[name]
        params = {**request.query_params, **request.path_params}
        try:
            loaded = await self._load(loader, params)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        context = {"page": name, "title": name.capitalize(), **loaded}
        return self.render(request, template, context)

    async def api(self, request: Request) -> Response:
        name = request.scope["route"].name
        params = {**request.query_params, **request.path_params}
        loaders: dict[str, Loader] = {n: loader for n, (_, loader) in PAGES.items()}
        loaders["search"] = lambda r, p: web_data.search(
            r, _str(p, "q"), [_str(p, "queue")] if _str(p, "queue") else None
        )
        loaders["failure"] = lambda r, p: web_data.failure_detail(r, _int(p, "index"))
        try:
            loaded = await self._load(loaders[name], params)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        except web_data.Stale as exc:
            return self._error(request, 404, str(exc))
        return JSONResponse(loaded["data"])

    async def api_index(self, request: Request) -> Response:
        base = request.scope.get("root_path", "")
        return JSONResponse(
            {
                "read_only": self.settings.read_only,
                "namespace": self.resque.namespace,
                "endpoints": [f"{base}/api/{n}" for n in (*PAGES, "search", "failed/{index}")],
                "actions": [] if self.settings.read_only else [f"{base}/api/actions/{a}" for a in ACTIONS],
                "docs": "docs/dashboard.md",
            }
        )

    async def api_csrf(self, request: Request) -> Response:
        token, fresh = self._csrf(request)
        response = JSONResponse({"csrf_token": token, "header": CSRF_HEADER, "field": CSRF_FIELD})
        if fresh:
            base = request.scope.get("root_path", "")
            response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="strict", path=base or "/")
        return response

    async def metrics_endpoint(self, request: Request) -> Response:
        body = await run_in_threadpool(metrics.render, self.resque)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    # --- actions --------------------------------------------------------------------------

    async def _form(self, request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = json.loads(await request.body())
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}
        return dict(await request.form())

    def _csrf_ok(self, request: Request, form: Mapping[str, Any]) -> bool:
        if request.scope.get("state", {}).get("auth") == "bearer":
            return True  # a browser never adds a bearer header on its own: no CSRF possible
        cookie = request.cookies.get(CSRF_COOKIE)
        sent = request.headers.get(CSRF_HEADER) or _str(form, CSRF_FIELD)
        return bool(cookie and sent) and _same(sent, self.settings.csrf_token(cookie or ""))

    async def action(self, request: Request) -> Response:
        name = request.path_params["action"]
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self._error(
                request, 403, "Forbidden: the CSRF token is missing or wrong. Reload the page."
            )
        if self.settings.read_only:
            return self._error(request, 403, "Forbidden: the dashboard is read-only.")
        if name not in ACTIONS:
            return self._error(request, 404, f"No such action: {name}")
        as_json = _wants_json(request)
        try:
            count = await run_in_threadpool(ACTIONS[name], self.resque, form)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        except web_data.Stale as exc:
            if as_json:
                return JSONResponse({"ok": False, "error": str(exc)}, 409)
            return self._back(request, form, error="stale")
        except ValueError as exc:
            if as_json:
                return JSONResponse({"ok": False, "error": str(exc)}, 400)
            return self._back(request, form, error="invalid")
        if as_json:
            return JSONResponse({"ok": True, "action": name, "count": count})
        return self._back(request, form, done=name, n=count)

    def _back(self, request: Request, form: Mapping[str, Any], **params: Any) -> Response:
        """Redirect (303) to the form's ``next`` page, which must be one of ours."""
        base = request.scope.get("root_path", "")
        target = _str(form, "next")
        if not target.startswith(f"{base}/") or target.startswith("//") or "\\" in target:
            target = f"{base}/"
        path, _, query = target.partition("?")
        kept = [(k, v) for k, v in _parse_query(query) if k not in ("done", "error", "n")]
        query = urlencode(kept + [(k, str(v)) for k, v in params.items()])
        return RedirectResponse(f"{path}?{query}", 303)

    # --- login ------------------------------------------------------------------------------

    async def unauthorized(self, request: Request, rel: str) -> Response:
        """The answer to an unauthenticated request: the login form for a browser page."""
        headers = {}
        if self.settings.basic_auth:
            headers["www-authenticate"] = 'Basic realm="pyresque", charset="UTF-8"'
        elif self.settings.auth_token:
            headers["www-authenticate"] = 'Bearer realm="pyresque"'
        page = not rel.startswith(("/api", "/metrics", "/actions"))
        if not (page and self.settings.auth_token and "text/html" in request.headers.get("accept", "")):
            return Response("authentication required\n", 401, headers, media_type="text/plain")
        base = request.scope.get("root_path", "")
        query = f"?{request.url.query}" if request.url.query else ""
        response = self.login_page(request, f"{base}{rel}{query}", 401)
        response.headers.update(headers)
        return response

    def login_page(
        self, request: Request, target: str, status: int = 200, wrong: bool = False
    ) -> Response:
        context = {"title": "Sign in", "next": target, "wrong": wrong}
        return self.render(request, "login.html", context, status)

    async def login_form(self, request: Request) -> Response:
        base = request.scope.get("root_path", "")
        return self.login_page(request, request.query_params.get("next", f"{base}/"))

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self._error(request, 403, "Forbidden: the CSRF token is missing or wrong.")
        base = request.scope.get("root_path", "")
        if not self.settings.auth_token or not _same(_str(form, "token"), self.settings.auth_token):
            return self.login_page(request, _str(form, "next"), 401, wrong=True)
        response = self._back(request, form)
        response.set_cookie(
            SESSION_COOKIE,
            self.settings.session_value(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=base or "/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self._error(request, 403, "Forbidden: the CSRF token is missing or wrong.")
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=base or "/")
        return response

    def routes(self) -> list[BaseRoute]:
        pages = [
            Route("/", self.page, name="overview"),
            Route("/queues", self.page, name="queues"),
            Route("/queues/{name:path}", self.page, name="queue"),
            Route("/workers", self.page, name="workers"),
            Route("/failed", self.page, name="failed"),
            Route("/delayed", self.page, name="delayed"),
            Route("/stats", self.page, name="stats"),
        ]
        api = [
            Route("/api/overview", self.api, name="overview"),
            Route("/api/queues", self.api, name="queues"),
            Route("/api/queues/{name:path}", self.api, name="queue"),
            Route("/api/workers", self.api, name="workers"),
            Route("/api/failed", self.api, name="failed"),
            Route("/api/delayed", self.api, name="delayed"),
            Route("/api/stats", self.api, name="stats"),
        ]
        return [
            *pages,
            *api,
            Route("/api", self.api_index),
            Route("/api/csrf", self.api_csrf),
            Route("/api/search", self.api, name="search"),
            Route("/api/failed/{index:int}", self.api, name="failure"),
            Route("/api/actions/{action}", self.action, methods=["POST"]),
            Route("/actions/{action}", self.action, methods=["POST"]),
            Route("/login", self.login_form),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/metrics", self.metrics_endpoint),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]


def _parse_query(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


def _qpath(value: str) -> str:
    return quote(value, safe="")


def create_app(
    redis_url: str | redis.Redis | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    prefix: str = "",
    read_only: bool = False,
    auth_token: str | None = None,
    basic_auth: str | tuple[str, str] | None = None,
    *,
    secret: str | bytes | None = None,
    poll_seconds: float = 3.0,
) -> Starlette:
    """The dashboard as an ASGI app.

    ``prefix`` serves it under a URL path (``/resque``); mounting the app in another
    ASGI app (``Mount("/resque", create_app(...))``) works without it. ``secret`` signs
    CSRF tokens: give the same one to every process serving the dashboard (default:
    random per app). ``redis_url`` defaults to ``REDIS_URL``.
    """
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    if isinstance(secret, str):
        secret = secret.encode()
    settings = Settings(
        read_only=read_only,
        auth_token=auth_token or None,
        basic_auth=parse_basic_auth(basic_auth),
        secret=secret or secrets.token_bytes(32),
        poll_seconds=poll_seconds,
    )
    resque = Resque(redis_url or url_from_env(), namespace=namespace)
    dashboard = Dashboard(resque, settings)
    routes = dashboard.routes()
    if prefix:
        routes = [
            Route("/", lambda request: RedirectResponse(f"{prefix}/")),
            Mount(prefix, routes=routes),
        ]
    app = Starlette(routes=routes)
    app.add_middleware(_Guard, settings=settings, prefix=prefix, login=dashboard.unauthorized)
    app.state.dashboard = dashboard
    return app


def serve(
    redis_url: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    prefix: str = "",
    read_only: bool = False,
    auth_token: str | None = None,
    basic_auth: str | tuple[str, str] | None = None,
    log_level: str = "info",
) -> None:
    """Run the dashboard with uvicorn until interrupted (what ``pyresque web`` does)."""
    import uvicorn

    settings = Settings(auth_token=auth_token or None, basic_auth=parse_basic_auth(basic_auth))
    check_bind(host, settings)
    app = create_app(redis_url, namespace, prefix, read_only, auth_token, basic_auth)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)


# --- template filters ------------------------------------------------------------------------


def fmt_ago(seconds: float | None) -> str:
    """A duration as a person reads it: ``45s``, ``3m 12s``, ``2h 5m``, ``3d 4h``."""
    if seconds is None:
        return "—"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def fmt_ms(ms: float | str | None) -> str:
    if ms is None:
        return "—"
    if isinstance(ms, str):
        return "> 60 s"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f}".rstrip("0").rstrip(".") + " ms"
    return f"{ms / 1000:.1f} s" if ms < 60000 else f"{ms / 60000:.1f} min"


def fmt_num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"
