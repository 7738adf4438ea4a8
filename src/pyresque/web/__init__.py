"""web."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily, so that /metrics (web.metrics) never needs Starlette.
    if name == "create_app":
        from pyresque.web.app import create_app

        return create_app
    raise AttributeError(f"module 'pyresque.web' has no attribute {name!r}")
