"""``pyresque server`` and ``pyresque demo``: for development, a local Redis and the
seed example run end to end."""

from __future__ import annotations

import threading

import click

from pyresque.cli.support import stop_on_signals
from pyresque.dev.server import RedisServer, ServerError


@click.command("demo")
@click.option("--jobs", "count", type=click.IntRange(1), default=200, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    default=None,
    help="Use this Redis (default: start a private server for the demo).",
)
def demo_command(count: int, workers: int, redis_url: str | None) -> None:
    """Run the seed example end to end: enqueue UserJobs, work them off, summarise."""
    from pyresque.dev import demo

    demo.run(count, workers, redis_url)


@click.command("server")
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
    with stop_on_signals() as stop:
        run_server_until(stop, RedisServer(port=port, appendonly=appendonly))
    click.echo("Redis server stopped.")


def run_server_until(stop: threading.Event, server: RedisServer) -> None:
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
