"""The dashboard under the project's URLs, for staff users (Django's admin login)."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from pyresque.contrib.django.producer import config
from pyresque.contrib.wsgi import MountedDashboard, collect, dashboard_secret

_lock = threading.Lock()
_mounted: MountedDashboard | None = None


def mounted() -> MountedDashboard:
    """The dashboard for the project's settings: it answers to ``ALLOWED_HOSTS`` (a
    ``.example.com`` entry names example.com only) unless ``PYRESQUE["DASHBOARD"]``
    says ``allowed_hosts``, and signs CSRF tokens with a key derived from ``SECRET_KEY``."""
    global _mounted
    with _lock:
        if _mounted is None:
            hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS]
            secret = dashboard_secret(settings.SECRET_KEY)
            _mounted = MountedDashboard(config(), allowed_hosts=hosts, secret=secret)
        return _mounted


def _forget(setting: str, **_: Any) -> None:
    global _mounted
    if setting in ("PYRESQUE", "ALLOWED_HOSTS", "SECRET_KEY"):
        with _lock:
            _mounted = None


setting_changed.connect(_forget, dispatch_uid="pyresque.contrib.django.views")


def serve(request: HttpRequest, path: str = "") -> HttpResponse:
    """Serve ``path`` of the dashboard mounted where this view's URL pattern is."""
    mount = request.path[: len(request.path) - len(path)]
    environ = {"wsgi.url_scheme": request.scheme, **request.META}
    app = mounted().under(environ, mount, path, request.body)
    status, headers, body = collect(app, environ)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        else:
            response[name] = value
    return response


#: The view: staff only (others go to the admin's login page); Django's CSRF check is
#: off for it because the dashboard checks its own token on every action.
dashboard = csrf_exempt(staff_member_required(serve))
