"""``pyresque web``: the dashboard (web/app.py) served by uvicorn on its own."""

from __future__ import annotations

from collections.abc import Iterable

from pyresque.protocol.keys import DEFAULT_NAMESPACE
from pyresque.web.app import OPEN, create_app
from pyresque.web.auth import Settings, check_bind, parse_basic_auth

DEFAULT_PORT = 5678  # resque-web's


def preflight(
    host: str, auth_token: str | None = None, basic_auth: str | tuple[str, str] | None = None
) -> None:
    """Raise ``WebConfigError`` for settings ``serve`` would refuse (checked before starting)."""
    check_bind(
        host, Settings(auth_token=auth_token or None, basic_auth=parse_basic_auth(basic_auth))
    )


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
    allowed_hosts: Iterable[str] = (),
    logs_to_root: bool = False,
) -> None:
    """Run the dashboard with uvicorn until interrupted (what ``pyresque web`` does).

    Without auth it is open to this machine only (``preflight``); it answers to the
    address it listens on as well as to localhost and ``allowed_hosts``.
    ``logs_to_root``: uvicorn logs through the root logger's handlers (``--log-format``)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    preflight(host, auth_token, basic_auth)
    app = create_app(
        redis_url,
        namespace,
        prefix,
        read_only,
        auth_token,
        basic_auth,
        auth=OPEN,
        allowed_hosts=[*allowed_hosts, host],
    )
    logs = None if logs_to_root else LOGGING_CONFIG  # None: uvicorn configures no logging
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, log_config=logs, server_header=False
    )
