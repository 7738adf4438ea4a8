"""A Flask app (app factory) that enqueues jobs and serves the dashboard behind its login.

    pip install 'pyresque[flask]'
    export FLASK_PYRESQUE_REDIS_URL=redis://127.0.0.1:6379/0 FLASK_SECRET_KEY=change-me
    flask --app examples/flask_app.py run                           # the web app
    flask --app examples/flask_app.py pyresque worker --queue mail  # runs its jobs

``FLASK_*`` variables become config keys (``app.config.from_prefixed_env``). The
dashboard is at /resque once signed in at /login (a stand-in for your own login).
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable
from typing import Any

from flask import Flask, redirect, request, session, url_for

from pyresque import Job
from pyresque.contrib.flask import Pyresque

pyresque = Pyresque()

LOGIN_FORM = '<form method="post"><input name="password" type="password"><button>Go</button></form>'


class WelcomeMail(Job):
    """Send a welcome mail (here: return the line it would send)."""

    def perform(self, email: str) -> str:
        return f"Welcome, {email}!"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Your app's login decorator (Flask-Login's ``login_required`` works the same)."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not session.get("admin"):
            return redirect(url_for("login", next=request.full_path))
        return view(*args, **kwargs)

    return guarded


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY="dev-only-secret",
        PYRESQUE_APPS=[__file__],  # the worker imports this file: WelcomeMail registers
    )
    app.config.from_prefixed_env()
    app.config.update(config or {})
    pyresque.init_app(app)
    pyresque.mount_dashboard(app, "/resque", login_required=login_required)

    @app.post("/signup")
    def signup() -> dict[str, str | None]:
        email = request.form["email"]
        return {"job": pyresque.resque.enqueue_to("mail", WelcomeMail, email, track_status=True)}

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        password = os.environ.get("ADMIN_PASSWORD", "")
        given = request.form.get("password", "")
        if request.method == "POST" and password and hmac.compare_digest(given, password):
            session["admin"] = True
            return redirect(request.args.get("next") or "/resque/")
        return LOGIN_FORM

    return app
