"""What the ``pyresque`` commands share: where Redis is, showing what it holds, one-line
errors and stopping on signals.

Anything read from Redis may hold any bytes, written by any producer or by an
attacker. Every value a command prints in a table or a line goes through
``printable``: characters a terminal would act on are escaped (escapes.py), and
huge values are cut to a prefix and their size. ``--json`` output is
ASCII-only JSON, which escapes the same characters.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, NoReturn

import click

from pyresque.client.resque import Resque
from pyresque.jobs import logs
from pyresque.jobs.apps import configure_logging
from pyresque.protocol.cluster import is_cluster
from pyresque.protocol.connection import ping
from pyresque.protocol.escapes import escape
from pyresque.protocol.keys import DEFAULT_NAMESPACE
from pyresque.protocol.sentinel import is_sentinel
from pyresque.protocol.targets import TLS_PARAMS, check_url, url_from_env, with_tls

#: Signals that stop a long-running command cleanly (``stop_on_signals``).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Characters of one value shown in a line or a table cell; longer values are cut.
SHOWN_LIMIT = 200


#: The TLS options every command takes: (option, TLS parameter, help).
_TLS_OPTIONS = (
    ("--ssl-ca-certs", "ssl_ca_certs", "CA certificates (PEM) to check the server with"),
    ("--ssl-certfile", "ssl_certfile", "client certificate (PEM), for servers that ask for one"),
    ("--ssl-keyfile", "ssl_keyfile", "the client certificate's private key (PEM)"),
    ("--ssl-cert-reqs", "ssl_cert_reqs", "check the server's certificate: required (default), "
     "optional or none"),
    ("--ssl-check-hostname/--no-ssl-check-hostname", "ssl_check_hostname",
     "check that the certificate names the host (default: yes)"),
)  # fmt: skip


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--redis-url``, ``--namespace`` and the TLS options; the command receives
    ``redis_url`` with the TLS options folded into it (targets.with_tls), so that
    everything it starts connects the same way."""

    @functools.wraps(func)
    def command(*args: Any, redis_url: str | None, **kwargs: Any) -> Any:
        tls = {name: kwargs.pop(name) for _, name, _ in _TLS_OPTIONS}
        if isinstance(tls["ssl_check_hostname"], bool):
            tls["ssl_check_hostname"] = str(tls["ssl_check_hostname"]).lower()
        if any(value is not None for value in tls.values()):
            url = redis_url or url_from_env()
            redis_url = with_tls(
                url if is_sentinel(url) or is_cluster(url) else check_url(url), tls
            )
        return func(*args, redis_url=redis_url, **kwargs)

    for flag, name, text in reversed(_TLS_OPTIONS):  # click lists the last added first
        command = click.option(
            flag,
            name,
            default=None,
            envvar=TLS_PARAMS[name],
            help=f"TLS: {text} (env {TLS_PARAMS[name]}).",
        )(command)
    command = click.option(
        "--namespace",
        envvar=["PREFIX", "RESQUE_NAMESPACE"],
        default=DEFAULT_NAMESPACE,
        show_default=True,
        help="Key namespace (env PREFIX, as php-resque).",
    )(command)
    return click.option(
        "--redis-url",
        envvar="REDIS_URL",
        default=None,
        help="Redis URL or host:port: redis://[user:password@]host:port/db, rediss://... "
        "(TLS), unix:///path?db=N (env REDIS_URL, or REDIS_BACKEND/REDIS_BACKEND_DB as "
        "php-resque; default redis://127.0.0.1:6379/0).",
    )(command)


def log_format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--log-format",
        type=click.Choice(logs.FORMATS),
        envvar="PYRESQUE_LOG_FORMAT",
        default="text",
        show_default=True,
        help="text, or json: one JSON object per line (needs pyresque[json-logs]); lines "
        "written while a job runs carry its id, class, queue and attempt "
        "(env PYRESQUE_LOG_FORMAT).",
    )(func)


def start_logging(level: int, log_format: str) -> None:
    """Configure logging (jobs/apps.py), or exit with one line saying what is missing."""
    try:
        configure_logging(level, log_format)
    except logs.LogFormatError as exc:
        raise click.ClickException(str(exc)) from exc


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def connect(redis_url: str | None, namespace: str) -> Resque:
    """A client that is known to reach Redis, or a one-line error."""
    resque = Resque(redis_url or url_from_env(), namespace=namespace)
    ping(resque.redis)
    return resque


def print_json(value: Any) -> None:
    """``value`` as indented JSON, ASCII only (so nothing in it reaches the terminal raw)."""
    click.echo(json.dumps(value, indent=2, default=str))


def table(rows: list[list[Any]], headers: list[str]) -> None:
    """Rows under headers, in aligned columns; every cell ``printable``."""
    cells = [headers, *([printable(c) for c in row] for row in rows)]
    widths = [max(len(c) for c in col) for col in zip(*cells, strict=True)]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def printable(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``value`` as one line of printable text: strings as they are, bytes decoded (bad
    UTF-8 as ``\\xNN``), anything else as JSON; unprintable characters escaped, and
    cut to ``limit`` characters plus the full length."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    else:
        text = _json(value)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return escape(text)


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):  # an int too long to write, a very deep value
        return f"<{type(value).__name__} too large to show>"


def when(epoch: object) -> str:
    """An epoch time as local date and time; ``-`` for none; anything else ``printable``."""
    if not epoch:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return printable(epoch)


def fail(message: str, code: int) -> NoReturn:
    """Exit with ``pyresque: error: <message>`` on one line (escaped: it may quote data)."""
    click.echo(f"pyresque: error: {escape(' '.join(message.split()))}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event set by SIGINT/SIGTERM (no KeyboardInterrupt); restore handlers after."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if old_handler is None else old_handler)
