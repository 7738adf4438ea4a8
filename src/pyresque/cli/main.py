"""The ``pyresque`` command line.

One function per command; shared helpers live at module level so that new
commands can be added without touching existing ones.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any

import click
import redis

from pyresque.cli.failed import failed_group
from pyresque.cli.schedule import cron_group, delayed_group
from pyresque.cli.status import status_command
from pyresque.cli.support import (
    connect,
    connection_options,
    printable,
)
from pyresque.cli.workers import ctl_command, info_command, workers_command
from pyresque.client.resque import Resque
from pyresque.dev.server import RedisServer, ServerError
from pyresque.exceptions import BadRedisURL
from pyresque.jobs.apps import app_specs, configure_logging, import_apps
from pyresque.protocol import strict_json
from pyresque.protocol.connection import REDIS_DOWN, url_from_env
from pyresque.protocol.escapes import escape
from pyresque.scheduling import cron
from pyresque.scheduling.scheduler import Scheduler
from pyresque.worker.fetch import QueueList
from pyresque.worker.options import MODES, WorkerOptions
from pyresque.worker.supervisor import Supervisor
from pyresque.worker.worker import Worker

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


class _CLI(click.Group):
    """A group whose errors are one line: ``pyresque: error: <what to fix>``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(super().main, args, prog_name, complete_var, False, **extra)
        if not standalone_mode:
            return run()
        try:
            code: Any = run()
        except click.UsageError as exc:
            _fail(exc.format_message(), 2)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except REDIS_DOWN as exc:
            _fail(str(exc), 1)
        except BadRedisURL as exc:
            _fail(str(exc), 2)
        except redis.exceptions.ResponseError as exc:  # WRONGTYPE and kin: foreign data
            _fail(
                f"Redis refused a command ({printable(str(exc))}): a key of the namespace "
                "holds another type than Resque writes there; inspect it with redis-cli",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"pyresque: error: {escape(' '.join(message.split()))}", err=True)
    sys.exit(code)


@click.group(cls=_CLI)
@click.version_option(version=_package_version(), prog_name="pyresque")
def main() -> None:
    """pyresque: Resque-compatible background jobs backed by Redis."""


for _command in (
    info_command,
    workers_command,
    ctl_command,
    status_command,
    failed_group,
    cron_group,
    delayed_group,
):
    main.add_command(_command)


# --- shared options -------------------------------------------------------------


#: The environment variables the commands read under Resque's names; all the others
#: start with PYRESQUE_ or RESQUE_.
ENV_VARS = (
    "QUEUE", "QUEUES", "INTERVAL", "BLOCKING", "COUNT", "CONCURRENCY", "PIDFILE",
    "FORK_PER_JOB", "PREFIX", "REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB",
    "APP_INCLUDE", "VERBOSE", "LOGGING", "VVERBOSE",
)  # fmt: skip


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any variable the commands read: for starting workers that
    take every setting from their arguments (tests, benchmarks), whatever the shell set."""
    return {
        k: v
        for k, v in environ.items()
        if k not in ENV_VARS and not k.startswith(("PYRESQUE_", "RESQUE_"))
    }


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def _setup_logging(verbose: bool, vverbose: bool, quiet: bool) -> None:
    verbose = verbose or bool(_env_flag("VERBOSE")) or bool(_env_flag("LOGGING"))
    vverbose = vverbose or bool(_env_flag("VVERBOSE"))
    level = logging.DEBUG if vverbose else logging.WARNING if quiet else logging.INFO
    configure_logging(level)


def _import_apps(apps: tuple[str, ...]) -> None:
    """Import the application's modules so their jobs register (``--app`` / APP_INCLUDE)."""
    try:
        import_apps(apps)
    except ImportError as exc:
        raise click.UsageError(str(exc)) from exc


def _schedule_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--schedule",
        "schedule_file",
        envvar="PYRESQUE_SCHEDULE",
        type=click.Path(exists=True, dir_okay=False),
        help="A YAML file of recurring jobs in resque-scheduler's format (needs "
        "pyresque[cron-yaml]); adds to the schedules the --app modules declare.",
    )(func)


def _load_schedule(path: str | None) -> None:
    if path is None:
        return
    try:
        cron.schedules.extend(cron.load_yaml(path))
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.UsageError(f"cannot load the schedule {path}: {exc}") from exc


# --- worker ---------------------------------------------------------------------


@main.command("worker")
@click.option(
    "-q",
    "--queue",
    "queue",
    envvar=["QUEUES", "QUEUE"],
    help="Comma-separated queues in priority order; '*', globs and !exclusions "
    "work as in Ruby Resque (env QUEUE / QUEUES).",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    envvar="APP_INCLUDE",
    help="Module (or .py file) to import so its jobs register; repeatable "
    "(env APP_INCLUDE, comma-separated).",
)
@click.option(
    "--interval",
    type=float,
    envvar="INTERVAL",
    default=5.0,
    show_default=True,
    help="Seconds between polls for jobs that foreign producers push; "
    "0 drains the queues and exits.",
)
@click.option(
    "--blocking/--no-blocking",
    default=None,
    help="Block on the wake-up list between polls (default; env BLOCKING=false "
    "turns it off and the worker sleeps INTERVAL instead).",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    envvar="COUNT",
    default=1,
    show_default=True,
    help="Run N workers under one supervising process.",
)
@click.option("--pidfile", envvar="PIDFILE", help="Write the (supervising) pid here.")
@click.option(
    "--mode",
    type=click.Choice(list(MODES)),
    envvar="PYRESQUE_MODE",
    default=None,
    help="fork: a child per job (default); inline: in the worker process (env "
    "FORK_PER_JOB=false); threads / asyncio: N jobs at once in one process; prefork: N "
    "long-lived children, recycled.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    envvar="CONCURRENCY",
    default=None,
    help="Jobs at once in threads (default 10), asyncio (20) and prefork (one per CPU) modes.",
)
@click.option(
    "--max-jobs-per-child",
    type=click.IntRange(1),
    envvar="PYRESQUE_MAX_JOBS_PER_CHILD",
    default=1000,
    show_default=True,
    help="prefork: replace a child after this many jobs.",
)
@click.option(
    "--max-memory",
    "max_memory_mb",
    type=click.IntRange(0),
    envvar="PYRESQUE_MAX_MEMORY_MB",
    default=0,
    help="prefork: replace a child whose peak memory passes this many MB (0: never).",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(0.5),
    envvar="PYRESQUE_LEASE_TTL",
    default=5.0,
    show_default=True,
    help="Seconds without a heartbeat before a worker's jobs are recovered.",
)
@click.option(
    "--term-timeout",
    type=click.FloatRange(0),
    envvar="RESQUE_TERM_TIMEOUT",
    default=10.0,
    show_default=True,
    help="Grace period between TERM and KILL for a running job.",
)
@click.option(
    "--fail-interrupted",
    is_flag=True,
    envvar="PYRESQUE_FAIL_INTERRUPTED",
    help="Fail a job stopped by TERM (as Resque does) instead of requeueing it.",
)
@click.option(
    "--max-crashes",
    type=click.IntRange(1),
    envvar="PYRESQUE_MAX_CRASHES",
    default=3,
    show_default=True,
    help="A job that kills its worker this many times goes to failed.",
)
@click.option(
    "--with-scheduler",
    is_flag=True,
    envvar="PYRESQUE_WITH_SCHEDULER",
    help="Also run a scheduler in the worker: delayed jobs, retries, cron (see `pyresque "
    "scheduler`).",
)
@_schedule_option
@click.option("-v", "--verbose", is_flag=True, help="Log each job (env VERBOSE, LOGGING).")
@click.option("--vverbose", is_flag=True, help="Also log Redis-level detail (env VVERBOSE).")
@click.option("--quiet", is_flag=True, help="Log only warnings and errors.")
@connection_options
def worker_command(
    queue: str | None,
    apps: tuple[str, ...],
    interval: float,
    blocking: bool | None,
    count: int,
    pidfile: str | None,
    mode: str | None,
    concurrency: int | None,
    max_jobs_per_child: int,
    max_memory_mb: int,
    lease_ttl: float,
    term_timeout: float,
    fail_interrupted: bool,
    max_crashes: int,
    with_scheduler: bool,
    schedule_file: str | None,
    verbose: bool,
    vverbose: bool,
    quiet: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Run workers: QUEUE=emails,default pyresque worker --app myapp.jobs"""
    _setup_logging(verbose, vverbose, quiet)
    try:
        queues = QueueList.parse(queue or "")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if mode is None:
        mode = "inline" if _env_flag("FORK_PER_JOB") is False else "fork"
    if blocking is None:
        blocking = _env_flag("BLOCKING") is not False
    _import_apps(apps)
    _load_schedule(schedule_file)
    connect(redis_url, namespace).redis.close()
    options = WorkerOptions(
        interval=interval,
        blocking=blocking,
        mode=mode,
        concurrency=concurrency,
        max_jobs_per_child=max_jobs_per_child,
        max_memory_mb=max_memory_mb,
        lease_ttl=lease_ttl,
        term_timeout=term_timeout,
        fail_interrupted=fail_interrupted,
        max_crashes=max_crashes,
        pidfile=pidfile if count == 1 else None,
        with_scheduler=with_scheduler,
        app=tuple(app_specs(apps)),
    )

    def run(ready: Callable[[], None] | None = None) -> None:
        # Each worker process opens its own connection.
        resque = Resque(redis_url or url_from_env(), namespace=namespace)
        worker = Worker(resque, queues, options, on_ready=ready)
        worker.work()
        if worker.exit_code:  # it could not go on (logged): restart it
            sys.exit(worker.exit_code)

    if count == 1:
        run()
        return
    if pidfile:
        Path(pidfile).write_text(f"{os.getpid()}\n")
    try:
        Supervisor(count, run).run()
    finally:
        if pidfile and os.path.exists(pidfile):
            os.unlink(pidfile)


# --- producing and inspecting -----------------------------------------------------


@main.command("enqueue")
@click.argument("queue")
@click.argument("job_class")
@click.argument("data", default="null")
@click.option("--track", is_flag=True, help="Track the job's status.")
@click.option(
    "--positional", is_flag=True, help="DATA is a JSON list of positional arguments (Ruby style)."
)
@connection_options
def enqueue_command(
    queue: str,
    job_class: str,
    data: str,
    track: bool,
    positional: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Enqueue JOB_CLASS on QUEUE with DATA (JSON; php-resque style: the job's self.args)."""
    try:
        value = strict_json.loads(data)
    except strict_json.BadJSON as exc:
        raise click.UsageError(f'DATA must be JSON ({exc}); e.g. \'{{"name": "x"}}\'') from exc
    if positional and not isinstance(value, list):
        raise click.UsageError("with --positional, DATA must be a JSON list")
    resque = connect(redis_url, namespace)
    try:
        if positional:
            job_id = resque.enqueue_to(queue, job_class, *value, track_status=track)
        else:
            job_id = resque.enqueue(queue, job_class, value, track_status=track)
    except (TypeError, ValueError) as exc:  # the producer's checks (producer.py)
        raise click.UsageError(printable(str(exc))) from exc
    click.echo(job_id or "(no id: Ruby-style payload)")


# --- scheduling -----------------------------------------------------------------------


@main.command("scheduler")
@click.option(
    "--app",
    "apps",
    multiple=True,
    envvar="APP_INCLUDE",
    help="Module (or .py file) "
    "to import: its jobs register and its schedules are declared; repeatable.",
)
@_schedule_option
@click.option(
    "--interval",
    type=click.FloatRange(0.05),
    default=0.5,
    show_default=True,
    help="Seconds between passes (delayed jobs are moved within about this of their time).",
)
@click.option(
    "--lease",
    type=click.FloatRange(0.5),
    default=5.0,
    show_default=True,
    help="Seconds without renewal before another scheduler takes over cron.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more (env VERBOSE, LOGGING).")
@click.option("--quiet", is_flag=True, help="Log only warnings and errors.")
@connection_options
def scheduler_command(
    apps: tuple[str, ...],
    schedule_file: str | None,
    interval: float,
    lease: float,
    verbose: bool,
    quiet: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Move due delayed jobs and retries to their queues and fire cron schedules (run
    several for high availability)."""
    _setup_logging(verbose, False, quiet)
    _import_apps(apps)
    _load_schedule(schedule_file)
    resque = connect(redis_url, namespace)
    scheduler = Scheduler(resque, cron.schedules, interval=interval, lease=lease)
    with _stop_on_signals() as stop:
        scheduler.start()
        while not stop.wait(0.5):
            if not scheduler.alive:  # cannot happen (supervision.py), but never silently
                _fail("the scheduler thread died (see the log); restart the scheduler", 1)
        scheduler.stop()


@main.command("web")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any other than loopback needs --token or --basic-auth.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5678, show_default=True)
@click.option("--url-prefix", default="", help="Serve under this URL path, e.g. /resque.")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option(
    "--token",
    envvar="PYRESQUE_WEB_TOKEN",
    default=None,
    help="Require this bearer token; browsers sign in with it (env PYRESQUE_WEB_TOKEN).",
)
@click.option(
    "--basic-auth",
    envvar="PYRESQUE_WEB_BASIC_AUTH",
    default=None,
    metavar="USER:PASSWORD",
    help="Require HTTP basic auth (env PYRESQUE_WEB_BASIC_AUTH).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    envvar="PYRESQUE_WEB_ALLOWED_HOSTS",
    metavar="NAME",
    help="Also answer to this Host name (repeatable; '*' for any); localhost and the --host "
    "address always work (env PYRESQUE_WEB_ALLOWED_HOSTS, space-separated).",
)
@connection_options
def web_command(
    host: str,
    port: int,
    url_prefix: str,
    read_only: bool,
    token: str | None,
    basic_auth: str | None,
    allowed_hosts: tuple[str, ...],
    redis_url: str | None,
    namespace: str,
) -> None:
    """Serve the web dashboard and JSON API (needs the web extra: pip install 'pyresque[web]')."""
    try:
        from pyresque.web.app import WebConfigError, preflight, serve
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the web extra: pip install 'pyresque[web]' ({exc})"
        ) from exc
    try:
        preflight(host, token, basic_auth)
    except WebConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    resque = connect(redis_url, namespace)  # one clear line if Redis is unreachable
    resque.redis.close()
    shown = f"[{host}]" if ":" in host else host
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    click.echo(f"pyresque dashboard: http://{shown}:{port}{prefix}/ (Ctrl-C to stop)")
    serve(
        redis_url or url_from_env(),
        namespace,
        host=host,
        port=port,
        prefix=url_prefix,
        read_only=read_only,
        auth_token=token,
        basic_auth=basic_auth,
        allowed_hosts=allowed_hosts,
    )


@main.command("demo")
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
