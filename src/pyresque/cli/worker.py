"""``pyresque worker`` and ``pyresque scheduler``: the long-running processes, and the
settings they read from Resque's environment variables."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pyresque.cli.support import (
    connect,
    connection_options,
    fail,
    log_format_option,
    start_logging,
    stop_on_signals,
)
from pyresque.client.resque import Resque
from pyresque.jobs.apps import app_specs, import_apps
from pyresque.protocol.targets import url_from_env
from pyresque.scheduling import cron
from pyresque.scheduling.housekeeping import Retention
from pyresque.scheduling.scheduler import Scheduler
from pyresque.worker.options import MODES, WorkerOptions
from pyresque.worker.queue_list import QueueList
from pyresque.worker.supervisor import Supervisor
from pyresque.worker.worker import Worker


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def _setup_logging(verbose: bool, vverbose: bool, quiet: bool, log_format: str) -> None:
    verbose = verbose or bool(_env_flag("VERBOSE")) or bool(_env_flag("LOGGING"))
    vverbose = vverbose or bool(_env_flag("VVERBOSE"))
    level = logging.DEBUG if vverbose else logging.WARNING if quiet else logging.INFO
    start_logging(level, log_format)


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


def _retention_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--keep-failed, --failed-max-age, --forget-idle-queues, given to ``func`` as one
    ``retention`` (scheduling/housekeeping.py)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        keep_failed: int | None,
        failed_max_age: float | None,
        forget_idle_queues: float | None,
        **kwargs: Any,
    ) -> Any:
        retention = Retention(keep_failed, failed_max_age, forget_idle_queues)
        return func(*args, retention=retention, **kwargs)

    options = [
        click.option(
            "--keep-failed",
            type=click.IntRange(0),
            envvar="PYRESQUE_KEEP_FAILED",
            help="Retention: keep only the newest N failure records (default: all, as Resque).",
        ),
        click.option(
            "--failed-max-age",
            type=click.FloatRange(0),
            envvar="PYRESQUE_FAILED_MAX_AGE",
            help="Retention: remove failure records older than N seconds.",
        ),
        click.option(
            "--forget-idle-queues",
            type=click.FloatRange(0),
            envvar="PYRESQUE_FORGET_IDLE_QUEUES",
            help="Retention: forget the names of queues empty and unwatched for N seconds.",
        ),
    ]
    for option in reversed(options):  # listed in --help in this order
        command = option(command)
    return command


def _load_schedule(path: str | None) -> None:
    if path is None:
        return
    try:
        cron.schedules.extend(cron.load_yaml(path))
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.UsageError(f"cannot load the schedule {path}: {exc}") from exc


@click.command("worker")
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
@_retention_options
@click.option("-v", "--verbose", is_flag=True, help="Log each job (env VERBOSE, LOGGING).")
@click.option("--vverbose", is_flag=True, help="Also log Redis-level detail (env VVERBOSE).")
@click.option("--quiet", is_flag=True, help="Log only warnings and errors.")
@log_format_option
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
    retention: Retention,
    verbose: bool,
    vverbose: bool,
    quiet: bool,
    log_format: str,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Run workers: QUEUE=emails,default pyresque worker --app myapp.jobs"""
    _setup_logging(verbose, vverbose, quiet, log_format)
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
        retention=retention,
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


@click.command("scheduler")
@click.option(
    "--app",
    "apps",
    multiple=True,
    envvar="APP_INCLUDE",
    help="Module (or .py file) "
    "to import: its jobs register and its schedules are declared; repeatable.",
)
@_schedule_option
@_retention_options
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
@log_format_option
@connection_options
def scheduler_command(
    apps: tuple[str, ...],
    schedule_file: str | None,
    retention: Retention,
    interval: float,
    lease: float,
    verbose: bool,
    quiet: bool,
    log_format: str,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Move due delayed jobs and retries to their queues and fire cron schedules (run
    several for high availability)."""
    _setup_logging(verbose, False, quiet, log_format)
    _import_apps(apps)
    _load_schedule(schedule_file)
    resque = connect(redis_url, namespace)
    scheduler = Scheduler(
        resque, cron.schedules, interval=interval, lease=lease, retention=retention
    )
    with stop_on_signals() as stop:
        scheduler.start()
        while not stop.wait(0.5):
            if not scheduler.alive:  # cannot happen (supervision.py), but never silently
                fail("the scheduler thread died (see the log); restart the scheduler", 1)
        scheduler.stop()
