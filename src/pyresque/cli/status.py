"""``pyresque status JOB_ID``: a tracked job's status (php-resque's ``job:<id>:status``);
``pyresque cancel JOB_ID``; ``pyresque batch BATCH_ID``: a group's counts."""

from __future__ import annotations

import click

from pyresque.cli.support import (
    connect,
    connection_options,
    json_option,
    print_json,
    printable,
    when,
)
from pyresque.protocol.slots import job_slot
from pyresque.protocol.status import JobStatus


@click.command("cancel")
@click.argument("job_id")
@json_option
@connection_options
def cancel_command(job_id: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Cancel a job: a queued or delayed one never runs; a running one is stopped by
    its worker within about a second (unless it finishes first). Its status becomes
    cancelled. Exits 1 when no such job is queued, delayed or running.
    """
    resque = connect(redis_url, namespace)
    try:
        outcome = resque.cancel(job_id)
    except ValueError as exc:  # an id that is not text (bytes no encoding makes text of)
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json(outcome)
    elif outcome["was"] == "running":
        click.echo(
            f"job {printable(job_id)} is running on {printable(outcome['worker'])}: "
            "told the worker to stop it"
        )
    elif outcome["cancelled"]:
        click.echo(f"job {printable(job_id)} cancelled (it was {outcome['was']})")
    if not outcome["cancelled"]:
        raise click.ClickException(f"job {printable(job_id)} is not queued, delayed or running")


@click.command("status")
@click.argument("job_id")
@click.option("--prefix", default="", help="The job's prefix, if it was enqueued with one.")
@json_option
@connection_options
def status_command(
    job_id: str, prefix: str, as_json: bool, redis_url: str | None, namespace: str
) -> None:
    """A tracked job's status: waiting, running, failed, complete or cancelled, its
    result, and the progress it reported.

    Only jobs enqueued with --track (track_status=True) have one; it expires a day
    after the job finished. Exits 1 when there is none.
    """
    resque = connect(redis_url, namespace)
    at = job_slot(resque.redis, resque.keys, job_id, prefix)  # on Cluster, its queue's slot
    raw = None if at is None else resque.redis.get(at.status(job_id, prefix))
    progress = resque.progress(job_id)
    if raw is None:
        raise click.ClickException(
            f"job {printable(job_id)} has no status: it was not enqueued with --track "
            "(track_status=True), or its status expired a day after it finished"
        )
    packet = JobStatus.decode(raw)
    if packet is None:
        raise click.ClickException(
            f"the status of job {printable(job_id)} is not a status packet: {printable(raw)}"
        )
    fields = {
        "id": job_id,
        "status": packet.status.name.lower(),
        "updated": packet.updated,
        "started": packet.started,
        "result": packet.result,
        "progress": progress.to_dict() if progress else None,
    }
    if as_json:
        print_json(fields)
        return
    click.echo(f"job {printable(job_id)}: {fields['status']}")
    click.echo(f"  updated {when(packet.updated)}, started {when(packet.started)}")
    if progress is not None:
        click.echo(
            f"  progress {progress.fraction:.0%} {printable(progress.message)} "
            f"({when(progress.updated)})"
        )
    if packet.result is not None:
        click.echo(f"  result {printable(packet.result)}")


@click.command("batch")
@click.argument("batch_id")
@json_option
@connection_options
def batch_command(batch_id: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """A group's live counts: total, pending, succeeded, failed and cancelled members,
    and its callbacks. Exits 1 when there is no such batch (it ended more than 7 days
    ago, or its id is wrong)."""
    resque = connect(redis_url, namespace)
    info = resque.batch(batch_id)
    if info is None:
        raise click.ClickException(f"no batch {printable(batch_id)} (or it expired)")
    if as_json:
        print_json(info.to_dict())
        return
    name = f" ({printable(info.name)})" if info.name else ""
    state = "succeeded" if info.success else "complete" if info.complete else "running"
    click.echo(f"batch {printable(batch_id)}{name}: {state}, created {when(info.created)}")
    click.echo(
        f"  {info.total} members: {info.pending} pending, {info.succeeded} succeeded, "
        f"{info.failed} failed, {info.cancelled} cancelled"
    )
    for label, job_id in (("on_success", info.on_success), ("on_complete", info.on_complete)):
        if job_id:
            click.echo(f"  {label}: job {printable(job_id)}")
