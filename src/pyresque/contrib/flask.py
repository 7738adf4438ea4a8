"""pyresque for Flask (``pip install 'pyresque[flask]'``): an extension configured
from ``app.config`` (``PYRESQUE_REDIS_URL``, ``PYRESQUE_NAMESPACE``, ``PYRESQUE_DIALECT``,
``PYRESQUE_STRICT``, ``PYRESQUE_APPS``, ``PYRESQUE_DASHBOARD``), the ``flask pyresque
...`` commands, and the dashboard behind the app's own login decorator.

    resque = Pyresque()                       # in your extensions module
    def create_app():
        app = Flask(__name__); app.config.from_prefixed_env()
        resque.init_app(app)
        resque.mount_dashboard(app, "/resque", login_required=login_required)
    resque.resque.enqueue("mail", Welcome, {"user": 7})   # in a request
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from flask import Flask, current_app, request
from flask.cli import with_appcontext

from pyresque.client.resque import Resque
from pyresque.contrib import commands
from pyresque.contrib.config import Config
from pyresque.contrib.wsgi import MountedDashboard, WSGIApp, dashboard_secret

View = Callable[..., Any]

#: The prefix of the extension's keys in ``app.config``.
PREFIX = "PYRESQUE_"


@dataclass
class _State:
    """What the extension keeps per app (``app.extensions["pyresque"]``)."""

    config: Config
    _resque: Resque | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def resque(self) -> Resque:
        with self._lock:
            if self._resque is None:
                self._resque = Resque(
                    self.config.redis_url,
                    self.config.namespace,
                    dialect=self.config.dialect,
                    strict=self.config.strict,
                )
            return self._resque


class Pyresque:
    """The extension: ``Pyresque(app)``, or ``Pyresque()`` then ``init_app(app)`` in an
    app factory. ``resque`` is the current app's ``Resque`` (made on first use)."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``PYRESQUE_*`` settings (a bad one raises ``ConfigError``
        saying which) and add the ``flask pyresque`` commands."""
        settings = {k[len(PREFIX) :]: v for k, v in app.config.items() if k.startswith(PREFIX)}
        app.extensions["pyresque"] = _State(Config.load(settings, "app.config PYRESQUE_*"))
        app.cli.add_command(pyresque_command)

    @property
    def resque(self) -> Resque:
        return _state().resque

    def mount_dashboard(
        self, app: Flask, path: str = "/resque", *, login_required: Callable[[View], View]
    ) -> None:
        """Serve the dashboard at ``path``, each request through ``login_required`` (your
        app's decorator: Flask-Login's, or your own). It answers to the hosts of
        ``TRUSTED_HOSTS`` (and ``PYRESQUE_DASHBOARD={"allowed_hosts": [...]}``), and
        signs its CSRF tokens with a key derived from ``SECRET_KEY``. A CSRF extension
        (Flask-WTF) must exempt this view: the dashboard checks its own tokens."""
        config = app.extensions["pyresque"].config
        defaults: dict[str, Any] = {"allowed_hosts": list(app.config.get("TRUSTED_HOSTS") or [])}
        if app.secret_key:
            defaults["secret"] = dashboard_secret(app.secret_key)
        dashboard = MountedDashboard(config, **defaults)

        def view(subpath: str = "") -> WSGIApp:
            mount = request.script_root + request.path[: len(request.path) - len(subpath)]
            return dashboard.under(request.environ, mount, subpath, request.get_data())

        protected = login_required(view)
        root = "/" + path.strip("/")
        methods = ["GET", "POST"]
        app.add_url_rule(f"{root}/", "pyresque_dashboard", protected, methods=methods)
        app.add_url_rule(f"{root}/<path:subpath>", "pyresque_dashboard", protected, methods=methods)


def _state() -> _State:
    state = current_app.extensions.get("pyresque")
    if not isinstance(state, _State):
        raise RuntimeError("pyresque is not set up for this app: call Pyresque().init_app(app)")
    return state


@click.command(
    "pyresque",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,  # --help is the pyresque command's
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def pyresque_command(args: Sequence[str]) -> None:
    """Run a pyresque command (worker, scheduler, web, ...) with the app's settings."""
    commands.run(args, _state().config, prog="flask pyresque")
