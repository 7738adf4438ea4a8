"""``pyresque enqueue``: putting a job on a queue from the shell."""

from __future__ import annotations

import click

from pyresque.cli.support import connect, connection_options, printable
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
