"""``pyresque cron`` and ``pyresque delayed``: recurring and scheduled jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pyresque.cli.support import (
    connect,
    connection_options,
    json_option,
    print_json,
    printable,
    table,
    when,
)
from pyresque.client.admin import cron, delayed
from pyresque.protocol import strict_json

#: ``delayed list`` counts the jobs when they are due at no more times than this.
_COUNTED = 10_000


@click.group("cron")
def cron_group() -> None:
    """Recurring jobs: list them, pause and resume them."""


@cron_group.command("list")
@json_option
@connection_options
def cron_list(as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Every schedule the cron leader declared, with last run, next run and outcome."""
    found = cron.status(connect(redis_url, namespace))
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    if not found:
        click.echo("no schedules (is a scheduler running? `pyresque scheduler`)")
        return
    rows = []
    for s in found:
        # Definitions and states are whatever the leader (or anyone) wrote: any JSON.
        spec = s.definition if isinstance(s.definition, dict) else {}
        every = "every " + printable(spec.get("every")) + "s"
        outcome = printable(s.outcome) + (f" (job {s.job_status})" if s.job_status else "")
        rows.append(
            [
                s.name,
                f"{printable(spec.get('cron') or every)} {printable(spec.get('tz', 'UTC'))}",
                f"{printable(spec.get('job'))} on {printable(spec.get('queue'))}",
                "paused" if s.paused else "active",
                when(s.last_run),
                when(s.next_run),
                outcome,
            ]
        )
    table(rows, ["NAME", "WHEN", "JOB", "STATE", "LAST RUN", "NEXT RUN", "OUTCOME"])


@cron_group.command("pause")
@click.argument("name")
@connection_options
def cron_pause(name: str, redis_url: str | None, namespace: str) -> None:
    """Pause a schedule: its ticks pass without enqueueing."""
    if not cron.pause(connect(redis_url, namespace), name):
        raise click.UsageError(f"no schedule named {name!r} (see `pyresque cron list`)")
    click.echo(f"paused {printable(name)}")


@cron_group.command("resume")
@click.argument("name")
@connection_options
def cron_resume(name: str, redis_url: str | None, namespace: str) -> None:
    """Resume a paused schedule from its next tick (missed ticks stay skipped)."""
    if not cron.resume(connect(redis_url, namespace), name):
        raise click.UsageError(f"schedule {name!r} is not paused")
    click.echo(f"resumed {printable(name)}")


@click.group("delayed")
def delayed_group() -> None:
    """Jobs scheduled for later (enqueue_at, retries, Ruby/PHP resque-scheduler items)."""


@delayed_group.command("list")
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@connection_options
def delayed_list(
    offset: int, limit: int, as_json: bool, redis_url: str | None, namespace: str
) -> None:
    """Scheduled jobs, soonest first."""
    resque = connect(redis_url, namespace)
    jobs = delayed.jobs(resque, offset, limit)
    if as_json:
        print_json([j.to_dict() for j in jobs])
        return
    # On Cluster the schedules are per queue (delayed_shards.py): counted queue by queue.
    keys = resque.keys
    due_times = 0 if keys.clustered else int(resque.redis.zcard(keys.delayed_schedule))
    if due_times <= _COUNTED:
        click.echo(f"{delayed.count(resque)} delayed job(s)")
    else:  # counting reads one length per due time: not for a listing
        click.echo(f"delayed jobs at {due_times} due times")
    rows = [
        [
            when(j.timestamp),
            j.queue or "?",
            j.class_name or "?",
            j.payload.args if j.payload else j.problem,
            j.id or "-",
        ]
        for j in jobs
    ]
    if rows:
        table(rows, ["DUE", "QUEUE", "CLASS", "ARGS", "ID"])


def _match_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--args",
        "args_json",
        help="Only jobs with exactly these args (a JSON list, the payload's positional arguments).",
    )(func)
    func = click.option("--class", "class_name", help="Jobs of this class.")(func)
    return click.option("--id", "job_id", help="The job with this id.")(func)


def _match(job_id: str | None, class_name: str | None, args_json: str | None) -> list[Any]:
    if not job_id and not class_name:
        raise click.UsageError("give --id, or --class (and optionally --args)")
    if args_json is None:
        return []
    try:
        args = strict_json.loads(args_json)
    except strict_json.BadJSON as exc:
        raise click.UsageError(f"--args must be JSON ({exc})") from exc
    if not isinstance(args, list):
        raise click.UsageError("--args must be a JSON list")
    return args


def _delayed_command(name: str, summary: str, label: str, action: str) -> None:
    """Define ``pyresque delayed NAME``, acting on scheduled jobs by id or class (and args)."""

    @delayed_group.command(name, help=summary)
    @_match_options
    @connection_options
    def command(
        job_id: str | None,
        class_name: str | None,
        args_json: str | None,
        redis_url: str | None,
        namespace: str,
    ) -> None:
        args = _match(job_id, class_name, args_json)
        done = delayed.take(connect(redis_url, namespace), action, class_name, args, job_id)
        click.echo(f"{label}: {done}")


_delayed_command(
    "cancel", "Remove scheduled jobs, by id or by class (and args).", "cancelled", "cancel"
)
_delayed_command(
    "enqueue-now", "Enqueue scheduled jobs now instead of at their time.", "enqueued", "enqueue"
)
