"""Who may use the dashboard: bearer-token or basic auth (or the host app's own check),
CSRF tokens, security headers, the Host header check against DNS rebinding, and the
refusal to listen beyond this machine without authentication."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyresque.exceptions import WebConfigError
from pyresque.protocol.connection import REDIS_DOWN
from pyresque.web.sessions import ABSOLUTE_SECONDS, IDLE_SECONDS, Sessions, Throttle

CSRF_COOKIE = "pyresque_csrf"
SESSION_COOKIE = "pyresque_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: ``create_app(auth=OPEN)``: no login; whoever serves or mounts the app protects it.
OPEN = "open"
#: Host names always served: this machine's own (a DNS-rebinding page never has them).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


#: The host app's own check (``create_app(auth=...)``): True lets the request in.
HostAuth = Callable[[Request], bool]


@dataclass(frozen=True)
class Settings:
    """Who may do what: auth, read-only mode, served host names, the CSRF signing key."""

    read_only: bool = False
    auth_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    host_auth: HostAuth | None = None
    secret: bytes = b""
    poll_seconds: float = 3.0
    allowed_hosts: frozenset[str] = field(default=LOCAL_HOSTS)
    session_seconds: tuple[float, float] = (IDLE_SECONDS, ABSOLUTE_SECONDS)  # idle, absolute

    @property
    def auth_required(self) -> bool:
        return bool(self.auth_token or self.basic_auth or self.host_auth)

    def host_allowed(self, header: str) -> bool:
        """Whether a request's ``Host`` header names this dashboard."""
        return "*" in self.allowed_hosts or host_name(header) in self.allowed_hosts

    def presents_credentials(self, request: Request) -> bool:
        """Whether the request carries a bearer token or basic credentials we check."""
        scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
        return (scheme == "bearer" and bool(self.auth_token)) or (
            scheme == "basic" and bool(self.basic_auth)
        )

    def authenticate(self, request: Request) -> str | None:
        """How the request is authenticated ("open", "bearer", "basic", "host") or None
        (sessions are checked in Redis, by ``Guard``)."""
        if not self.auth_required:
            return "open"
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if self.auth_token and scheme == "bearer" and same(credentials.strip(), self.auth_token):
            return "bearer"
        if self.basic_auth and scheme == "basic" and self._basic_ok(credentials.strip()):
            return "basic"
        if self.host_auth is not None and self.host_auth(request):
            return "host"
        return None

    def _basic_ok(self, credentials: str) -> bool:
        assert self.basic_auth is not None
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared, always, so the time taken does not tell which one was wrong.
        return same(user, self.basic_auth[0]) & same(password, self.basic_auth[1])

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)`` as a pair; None stays None."""
    if value is None or isinstance(value, tuple):
        return value
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise WebConfigError("basic auth must be given as USER:PASSWORD, both non-empty")
    return user, password


def host_name(header: str) -> str:
    """The host of a ``Host`` header: lower case, without port, brackets or final dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0].rstrip(".")


def allowed_hosts(names: Iterable[str]) -> frozenset[str]:
    """The host names to serve: this machine's and ``names`` (``*``: any; a wildcard
    address such as ``0.0.0.0`` names nothing)."""
    found = set()
    for given in names:
        name = given.strip().lower()
        bare_ipv6 = name.count(":") > 1 and not name.startswith("[")
        found.add(name if bare_ipv6 else host_name(name))
    return LOCAL_HOSTS | (found - {"", "0.0.0.0", "::"})


def decide_auth(settings: Settings, auth: object) -> None:
    """Refuse a dashboard whose creator did not say who may change things."""
    if not (settings.auth_required or settings.read_only or auth == OPEN):
        raise WebConfigError(
            "create_app() needs an explicit auth decision: pass auth_token= or basic_auth=, "
            'auth=<callable(request) -> bool> for your app\'s own check, auth="open" if '
            "your app protects this mount itself, or read_only=True"
        )


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


def _rel_path(scope: Scope, prefix: str) -> str:
    """The request path below the app's mount point and URL prefix."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    return path or "/"


Unauthorized = Callable[[Request, str], Awaitable[Response]]


def client_address(request: Request) -> str:
    """The peer's address: what failed sign-ins are counted by."""
    return request.client.host if request.client else "unknown"


def too_many(wait: int) -> str:
    return f"Too many failed sign-ins from this address: try again in {wait} s."


def _throttled(wait: int) -> Response:
    return PlainTextResponse(too_many(wait) + "\n", 429, {"retry-after": str(wait)})


class Guard:
    """ASGI middleware: the Host check, authentication (when configured), throttling of
    failed sign-ins, and security headers."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        prefix: str,
        login: Unauthorized,
        sessions: Sessions | None,
        throttle: Throttle,
    ) -> None:
        self.app, self.settings, self.prefix, self.login = app, settings, prefix, login
        self.sessions, self.throttle = sessions, throttle

    async def _authenticate(self, request: Request) -> str | Response | None:
        """How the request is authenticated, None, or the answer to a throttled client."""
        presented = self.settings.presents_credentials(request)
        address = client_address(request)
        if presented and (wait := await run_in_threadpool(self.throttle.wait, address)):
            return _throttled(wait)
        method = self.settings.authenticate(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        sessions = self.sessions
        if (
            method is None
            and cookie
            and sessions
            and await run_in_threadpool(sessions.check, cookie)
        ):
            method = "session"
        if method is None and presented:
            wait = await run_in_threadpool(self.throttle.failed, address)
            return _throttled(wait) if wait else None
        return method

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

        host = Headers(scope=scope).get("host", "")
        if not self.settings.host_allowed(host):
            refusal = PlainTextResponse(
                f"invalid Host header {host[:100]!r}: this dashboard answers to "
                f"{', '.join(sorted(self.settings.allowed_hosts))}; add the name with "
                "--allowed-host (PYRESQUE_WEB_ALLOWED_HOSTS) or create_app(allowed_hosts=...)\n",
                400,
            )
            await refusal(scope, receive, send_with_headers)
            return
        rel = _rel_path(scope, self.prefix)
        # What the routes see below the URL prefix, so pages rendered here link correctly.
        request = Request({**scope, "root_path": scope.get("root_path", "") + self.prefix})
        try:
            method = await self._authenticate(request)
        except REDIS_DOWN as exc:
            method = PlainTextResponse(f"Cannot reach Redis: {exc}\n", 503)
        if isinstance(method, Response):
            await method(scope, receive, send_with_headers)
            return
        scope.setdefault("state", {})["auth"] = method
        public = rel == "/login" or rel.startswith("/static/")  # the sign-in form and its CSS
        if method is None and not public:
            response = await self.login(request, rel)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
