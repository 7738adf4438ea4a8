"""Layer 8, the web dashboard: pages, a JSON API and Prometheus ``/metrics``.

An ASGI app (Starlette, Jinja2 ``templates/``, ``static/``) with its sign-in and
defences against hostile data. What it shows and changes comes from the client's
admin API; this folder only presents it.

May import: ``worker`` and below, yet it needs only the client (its admin API) and the
protocol, and does not load the worker or the executors (tests/test_layers.py).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily, so that /metrics (web.metrics) never needs Starlette.
    if name == "create_app":
        from pyresque.web.app import create_app

        return create_app
    raise AttributeError(f"module 'pyresque.web' has no attribute {name!r}")
