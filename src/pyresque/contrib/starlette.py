"""pyresque for Starlette and FastAPI (``pip install 'pyresque[fastapi]'``): an
``AsyncResque`` for the application's lifetime, handed to each request, and the
dashboard mounted as a sub-application.

    app = Starlette(routes=..., lifespan=lifespan("redis://localhost:6379/0"))
    async def signup(request):
        await get_resque(request).enqueue("mail", Welcome, {"user": 7})
    mount_dashboard(app, "/resque", auth=lambda request: is_admin(request))

FastAPI handlers take it as a dependency (contrib/fastapi.py). The dashboard keeps
its defences when mounted (Host check, CSRF on actions, escaping) and still needs
its own auth decision (``create_app``'s ``auth``, ``auth_token`` ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request

from pyresque.client.async_resque import AsyncResque
from pyresque.protocol.keys import DEFAULT_NAMESPACE

#: The key of the producer in the lifespan's state (``request.state.resque``).
STATE_KEY = "resque"


def lifespan(
    redis: str | None = None, namespace: str = DEFAULT_NAMESPACE, **options: Any
) -> Callable[[Starlette], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan that opens an ``AsyncResque(redis, namespace, **options)`` when the
    app starts and closes it when it stops; requests find it with ``get_resque``. To
    combine it with a lifespan of your own, enter ``producer(...)`` in yours and put
    the producer in the state under ``STATE_KEY``."""

    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with producer(redis, namespace, **options) as resque:
            yield {STATE_KEY: resque}

    return run


def producer(
    redis: str | None = None, namespace: str = DEFAULT_NAMESPACE, **options: Any
) -> AsyncResque:
    """An ``AsyncResque``: ``async with producer(...) as resque`` closes it at the end."""
    return AsyncResque(redis, namespace, **options)


def get_resque(request: Request) -> AsyncResque:
    """The app's producer, from its lifespan's state."""
    resque = getattr(request.state, STATE_KEY, None)
    if not isinstance(resque, AsyncResque):
        raise RuntimeError(
            "no AsyncResque in the app's state: create the app with "
            "lifespan=pyresque.contrib.starlette.lifespan(...) (or put one under "
            f"{STATE_KEY!r} in your lifespan's state)"
        )
    return resque


def mount_dashboard(
    app: Starlette,
    path: str = "/resque",
    redis: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    **options: Any,
) -> None:
    """Mount the dashboard at ``path``; ``options`` are ``create_app``'s (one of
    ``auth=`` your own check, ``auth_token=``, ``basic_auth=`` or ``read_only=True`` is
    required; ``allowed_hosts=`` names the hosts it answers to besides localhost)."""
    from pyresque.web.app import create_app

    app.mount("/" + path.strip("/"), create_app(redis, namespace, **options))
