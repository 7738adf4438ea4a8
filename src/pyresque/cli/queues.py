"""``pyresque enqueue`` and ``forget-idle-queues``: queues from the shell."""

from __future__ import annotations

import click

from pyresque.cli.support import connect, connection_options, printable
from pyresque.client.admin.idle_queues import forget_idle_queues
from pyresque.protocol import strict_json


@click.command("enqueue")
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
    except (TypeError, ValueError) as exc:  # the producer's checks (client/checks.py)
        raise click.UsageError(printable(str(exc))) from exc
    click.echo(job_id or "(no id: Ruby-style payload)")


@click.command("forget-idle-queues")
@click.option(
    "--idle",
    required=True,
    type=click.FloatRange(min=0),
    help="Seconds a queue stays empty and unwatched before its name is forgotten.",
)
@connection_options
def forget_idle_queues_command(idle: float, redis_url: str | None, namespace: str) -> None:
    """Take the names of idle queues out of Resque's `queues` set (opt-in: Resque keeps
    every name until remove-queue). Run it periodically, well within --idle: the first
    run that sees a queue empty and named by no worker marks it, a later one forgets
    it. An enqueue puts the name back."""
    done = forget_idle_queues(connect(redis_url, namespace), idle)
    for name in done["forgotten"]:
        click.echo(f"forgot {printable(name)}")
    for name in done["restored"]:
        click.echo(f"restored {printable(name)} (it got a job after it was forgotten)")
    click.echo(f"{len(done['forgotten'])} forgotten, {len(done['restored'])} restored")
