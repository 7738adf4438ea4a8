"""The dashboard, an ASGI app, served from a WSGI framework's URLs (Django, Flask)
through a2wsgi's ASGI-to-WSGI adapter, under a path and behind the framework's login.

The framework's view checks who may see it (``staff_member_required``, a Flask
``login_required``) and passes the request on here with its body and the path it
is mounted at; the dashboard keeps its own defences there: the Host check (the
``allowed_hosts`` it is given), CSRF tokens on every action, escaping. Its CSRF
secret is derived from the framework's secret key, so every process of a site
accepts the tokens the others issued.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from pyresque.contrib.config import Config

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def dashboard_secret(secret_key: str | bytes) -> bytes:
    """The dashboard's CSRF secret, derived from a framework's secret key."""
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hmac.new(key, b"pyresque.dashboard.csrf", hashlib.sha256).digest()


class MountedDashboard:
    """The dashboard for ``config``, made on its first request (so that a server that
    forks its processes after importing the URLs starts the adapter's event-loop
    thread in each process). ``defaults`` are ``create_app`` arguments that the
    settings' ``DASHBOARD`` may override: ``allowed_hosts`` and ``secret``."""

    def __init__(self, config: Config, **defaults: Any) -> None:
        # The framework's login guards the mount: the dashboard itself is open behind it.
        self._options = {"auth": "open", **defaults, **config.dashboard}
        self._config = config
        self._app: WSGIApp | None = None
        self._lock = threading.Lock()

    def app(self) -> WSGIApp:
        with self._lock:
            if self._app is None:
                from a2wsgi import ASGIMiddleware

                from pyresque.web.app import create_app

                asgi = create_app(self._config.redis_url, self._config.namespace, **self._options)
                self._app = cast("WSGIApp", ASGIMiddleware(asgi))  # type: ignore[arg-type]
            return self._app

    def under(self, environ: dict[str, Any], mount: str, path: str, body: bytes) -> WSGIApp:
        """A WSGI app that serves ``environ``'s request as the dashboard mounted at
        ``mount`` (a URL path) sees it: ``path`` below the mount, with ``body``
        (read by the framework already, or not: a stream is read only once)."""
        inner = {
            # A request without a Host header (PEP 3333 allows it) names the server.
            "HTTP_HOST": f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}",
            **environ,
            "SCRIPT_NAME": _wsgi_str(mount.rstrip("/")),
            "PATH_INFO": _wsgi_str("/" + path.lstrip("/")),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
        }
        app = self.app()

        def serve(_: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            return app(inner, start_response)

        return serve


def _wsgi_str(path: str) -> str:
    """A decoded URL path as WSGI holds it: its UTF-8 bytes as latin-1 characters."""
    return path.encode("utf-8", "surrogateescape").decode("latin-1")


def collect(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run a WSGI app: its status code, headers and whole body (dashboard pages are
    small and never streamed)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [int(status.split(" ", 1)[0]), headers]
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return started[0], started[1], body
