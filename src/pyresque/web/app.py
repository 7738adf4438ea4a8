"""The web dashboard: an ASGI app (Starlette + Jinja2) for one Resque namespace.

``create_app(...)`` returns the app, to run on its own (``web.serve``, ``pyresque
web``) or to mount inside another ASGI app. Pages and the JSON API share one data layer,
the admin layer the CLI uses too (``client.admin``, mapped to URLs in
``web.endpoints``); actions are POSTs that need a CSRF token;
Jinja2 autoescaping and a strict Content-Security-Policy keep job data inert; bearer
token, basic auth or the host app's check guard everything but the static files and
the sign-in form (``web.auth``, ``web.sessions``); only the dashboard's own host names
are served.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pyresque.client.admin.base import Problems, Stale
from pyresque.client.resque import Resque
from pyresque.exceptions import WebConfigError
from pyresque.protocol.connection import REDIS_DOWN
from pyresque.protocol.keys import DEFAULT_NAMESPACE
from pyresque.protocol.targets import url_from_env
from pyresque.web import auth as web_auth
from pyresque.web import metrics
from pyresque.web import safe as web_safe
from pyresque.web.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    OPEN,
    SESSION_COOKIE,
    Guard,
    HostAuth,
    Settings,
    client_address,
    decide_auth,
    parse_basic_auth,
    same,
    too_many,
)
from pyresque.web.base import Base, set_cookie, wants_json
from pyresque.web.endpoints import ACTIONS, API, PAGES, Loader, text_param
from pyresque.web.sessions import ABSOLUTE_SECONDS, IDLE_SECONDS, Sessions, Throttle

__all__ = [
    "ACTIONS",
    "OPEN",
    "PAGES",
    "Dashboard",
    "WebConfigError",
    "create_app",
]

STATIC = Path(__file__).with_name("static")


class Dashboard(Base):
    """The endpoints, bound to one Resque namespace and one set of ``Settings``."""

    def __init__(self, resque: Resque, settings: Settings) -> None:
        super().__init__(resque, settings)
        self.sessions = (
            Sessions(resque.redis, resque.keys, settings.auth_token, *settings.session_seconds)
            if settings.auth_token
            else None
        )
        self.throttle = Throttle(resque.redis, resque.keys)

    async def _load(self, loader: Loader, params: Mapping[str, Any]) -> dict[str, Any]:
        """A page's data, fit to show (``web_safe.clip``), and the failed list's length."""

        def run() -> dict[str, Any]:
            data = web_safe.clip(loader(self.resque, params))
            count = Problems().section("failed", self.resque.failures.count, None)
            return {"data": data, "failed_count": count}

        return await run_in_threadpool(run)

    # --- pages and the read API -------------------------------------------------------

    async def page(self, request: Request) -> Response:
        name = request.scope["route"].name
        template, loader = PAGES[name]
        params = _params(request)
        try:
            loaded = await self._load(loader, params)
        except REDIS_DOWN as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        except web_safe.BadParameter as exc:
            return self._error(request, 400, f"Bad request: {exc}")
        context = {"page": name, "title": name.capitalize(), **loaded}
        return self.render(request, template, context)

    async def api(self, request: Request) -> Response:
        name = request.scope["route"].name
        params = _params(request)
        try:
            loaded = await self._load(API[name], params)
        except REDIS_DOWN as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        except web_safe.BadParameter as exc:
            return self._error(request, 400, f"Bad request: {exc}")
        except Stale as exc:
            return self._error(request, 404, str(exc))
        return JSONResponse(loaded["data"])

    async def api_index(self, request: Request) -> Response:
        base = request.scope.get("root_path", "")
        return JSONResponse(
            {
                "read_only": self.settings.read_only,
                "namespace": self.resque.namespace,
                "endpoints": [
                    f"{base}/api/{n}" for n in (*PAGES, "search", "failed/{index}", "bulk")
                ],
                "actions": []
                if self.settings.read_only
                else [f"{base}/api/actions/{a}" for a in ACTIONS],
                "docs": "docs/dashboard.md",
            }
        )

    async def api_csrf(self, request: Request) -> Response:
        token, fresh = self._csrf(request)
        response = JSONResponse({"csrf_token": token, "header": CSRF_HEADER, "field": CSRF_FIELD})
        if fresh:
            set_cookie(request, response, CSRF_COOKIE, fresh)
        return response

    async def metrics_endpoint(self, request: Request) -> Response:
        body = await run_in_threadpool(metrics.render, self.resque)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    # --- actions --------------------------------------------------------------------------

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
        as_json = wants_json(request)
        try:
            count = await run_in_threadpool(ACTIONS[name], self.resque, form)
        except REDIS_DOWN as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        except Stale as exc:
            if as_json:
                return JSONResponse({"ok": False, "error": str(exc)}, 409)
            return self._back(request, form, error="stale")
        except ValueError as exc:
            if as_json:
                return JSONResponse({"ok": False, "error": str(exc)}, 400)
            return self._back(request, form, error="invalid")
        except redis.exceptions.ResponseError as exc:  # a key of another type, say
            if as_json:
                return JSONResponse({"ok": False, "error": f"Redis refused it: {exc}"}, 409)
            return self._back(request, form, error="refused")
        if as_json:
            return JSONResponse({"ok": True, "action": name, "count": count})
        return self._back(request, form, done=name, n=count)

    # --- login ------------------------------------------------------------------------------

    async def unauthorized(self, request: Request, rel: str) -> Response:
        """The answer to an unauthenticated request: the login form for a browser page."""
        headers = {}
        if self.settings.basic_auth:
            headers["www-authenticate"] = 'Basic realm="pyresque", charset="UTF-8"'
        elif self.settings.auth_token:
            headers["www-authenticate"] = 'Bearer realm="pyresque"'
        page = not rel.startswith(("/api", "/metrics", "/actions"))
        if not (
            page and self.settings.auth_token and "text/html" in request.headers.get("accept", "")
        ):
            return Response("authentication required\n", 401, headers, media_type="text/plain")
        base = request.scope.get("root_path", "")
        query = f"?{request.url.query}" if request.url.query else ""
        response = self.login_page(request, f"{base}{rel}{query}", 401)
        response.headers.update(headers)
        return response

    def login_page(
        self, request: Request, target: str, status: int = 200, wrong: bool = False, wait: int = 0
    ) -> Response:
        context = {
            "title": "Sign in",
            "next": target,
            "wrong": wrong,
            "wait": too_many(wait) if wait else "",
        }
        response = self.render(request, "login.html", context, status)
        if wait:
            response.headers["retry-after"] = str(wait)
        return response

    async def login_form(self, request: Request) -> Response:
        base = request.scope.get("root_path", "")
        return self.login_page(request, request.query_params.get("next", f"{base}/"))

    async def login(self, request: Request) -> Response:
        """Check the token (unless this address must wait) and start a session."""
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self._error(request, 403, "Forbidden: the CSRF token is missing or wrong.")
        target, address = text_param(form, "next"), client_address(request)
        try:
            wait = await run_in_threadpool(self.throttle.wait, address)
            if wait:
                return self.login_page(request, target, 429, wait=wait)
            token = text_param(form, "token")
            if self.sessions is None or not same(token, self.settings.auth_token or ""):
                wait = await run_in_threadpool(self.throttle.failed, address)
                return self.login_page(request, target, 429 if wait else 401, True, wait)
            await run_in_threadpool(self.throttle.succeeded, address)
            session = await run_in_threadpool(self.sessions.create)
        except REDIS_DOWN as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        response = self._back(request, form)
        set_cookie(request, response, SESSION_COOKIE, session)
        return response

    async def logout(self, request: Request) -> Response:
        """End this session, or with ``everywhere``, every session of the dashboard."""
        form = await self._form(request)
        if not self._csrf_ok(request, form):
            return self._error(request, 403, "Forbidden: the CSRF token is missing or wrong.")
        cookie = request.cookies.get(SESSION_COOKIE)
        sessions = self.sessions
        try:
            if sessions is not None and text_param(form, "everywhere"):
                await run_in_threadpool(sessions.revoke_all)
            elif sessions is not None and cookie:
                await run_in_threadpool(sessions.revoke, cookie)
        except REDIS_DOWN as exc:
            return self._error(request, 503, f"Cannot reach Redis: {exc}")
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=base or "/")
        return response

    def routes(self) -> list[BaseRoute]:
        paths = {
            "overview": "/",
            "queues": "/queues",
            "queue": "/queues/{name:anytext}",
            "workers": "/workers",
            "failed": "/failed",
            "delayed": "/delayed",
            "stats": "/stats",
            "workflows": "/workflows",
            "job": "/jobs/{id:anytext}",
        }
        pages = [Route(path, self.page, name=name) for name, path in paths.items()]
        api = [Route(f"/api/{name}", self.api, name=name) for name in ("overview", "search")]
        api += [Route(f"/api{p}", self.api, name=n) for n, p in paths.items() if p != "/"]
        return [
            *pages,
            *api,
            Route("/api", self.api_index),
            Route("/api/csrf", self.api_csrf),
            Route("/api/failed/{index}", self.api, name="failure"),
            Route("/api/bulk", self.api, name="bulk"),
            Route("/api/actions/{action}", self.action, methods=["POST"]),
            Route("/actions/{action}", self.action, methods=["POST"]),
            Route("/login", self.login_form),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/metrics", self.metrics_endpoint),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]


def create_app(
    redis_url: str | redis.Redis | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    prefix: str = "",
    read_only: bool = False,
    auth_token: str | None = None,
    basic_auth: str | tuple[str, str] | None = None,
    *,
    auth: HostAuth | str | None = None,
    allowed_hosts: Iterable[str] = (),
    secret: str | bytes | None = None,
    poll_seconds: float = 3.0,
    session_seconds: tuple[float, float] = (IDLE_SECONDS, ABSOLUTE_SECONDS),
) -> Starlette:
    """The dashboard as an ASGI app.

    Who may use it must be said (``WebConfigError`` otherwise): ``auth_token`` and/or
    ``basic_auth``; ``auth=callable(request) -> bool``, your app's own check; ``auth=OPEN``
    (``"open"``) when your app or a proxy protects it; or ``read_only=True``.
    ``allowed_hosts`` are the host names it answers to besides localhost (``"*"``: any).
    A sign-in session (``auth_token``) ends ``session_seconds[0]`` after its last use
    and ``session_seconds[1]`` after sign-in.
    ``prefix`` serves it under a URL path (``/resque``); mounting the app in another
    ASGI app (``Mount("/resque", create_app(...))``) works without it. ``secret`` signs
    CSRF tokens: give the same one to every process serving the dashboard (default:
    random per app). ``redis_url`` defaults to ``REDIS_URL``.
    """
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    if isinstance(secret, str):
        secret = secret.encode()
    if isinstance(auth, str) and auth != OPEN:
        raise WebConfigError(f'auth must be a callable or "open", got {auth!r}')
    settings = Settings(
        read_only=read_only,
        auth_token=auth_token or None,
        basic_auth=parse_basic_auth(basic_auth),
        host_auth=None if auth is None or isinstance(auth, str) else auth,
        secret=secret or secrets.token_bytes(32),
        poll_seconds=poll_seconds,
        allowed_hosts=web_auth.allowed_hosts(allowed_hosts),
        session_seconds=session_seconds,
    )
    decide_auth(settings, auth)
    resque = Resque(redis_url or url_from_env(), namespace=namespace)
    dashboard = Dashboard(resque, settings)
    routes = dashboard.routes()
    if prefix:
        routes = [
            Route("/", lambda request: RedirectResponse(f"{prefix}/")),
            Mount(prefix, routes=routes),
        ]
    app = Starlette(routes=routes)
    app.add_middleware(
        Guard,
        settings=settings,
        prefix=prefix,
        login=dashboard.unauthorized,
        sessions=dashboard.sessions,
        throttle=dashboard.throttle,
    )
    app.state.dashboard = dashboard
    return app


def _params(request: Request) -> dict[str, Any]:
    """A page's parameters: the query's, and the path's where given (``/jobs/?job=.``: a
    name that cannot be a path segment comes in the query, web/format.py ``item_path``)."""
    given = {k: v for k, v in request.path_params.items() if v != ""}
    return {**request.query_params, **given}
