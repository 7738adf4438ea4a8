"""The ``pyresque`` command line.

One function per command; shared helpers live at module level so that new
commands can be added without touching existing ones.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from types import FrameType

import click

from pyresque.server import RedisServer, ServerError

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _package_version() -> str:
    try:
        return version("pyresque")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
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


def _run_server_until(stop: threading.Event, server: RedisServer) -> None:
    """Start *server*, announce it, and keep it running until *stop* is set."""
    try:
        server.start()
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        click.echo(f"Redis server running at {server.url} (Ctrl-C to stop)")
        while not stop.wait(0.5):
            if not server.running:
                raise click.ClickException(
                    f"Redis server exited unexpectedly:\n{server.log_tail()}"
                )
    finally:
        server.stop()


@click.group()
@click.version_option(version=_package_version(), prog_name="pyresque")
def main() -> None:
    """pyresque: Resque-compatible background jobs backed by Redis."""


@main.command("server")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port on 127.0.0.1 (default: a free port).",
)
@click.option(
    "--appendonly",
    is_flag=True,
    help="Enable the append-only file with fsync on every write.",
)
def server_command(port: int | None, appendonly: bool) -> None:
    """Run a local Redis-compatible server until Ctrl-C / SIGTERM."""
    with _stop_on_signals() as stop:
        _run_server_until(stop, RedisServer(port=port, appendonly=appendonly))
    click.echo("Redis server stopped.")


if __name__ == "__main__":
    main()
