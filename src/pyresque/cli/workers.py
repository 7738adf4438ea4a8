"""``pyresque info``, ``workers`` and ``ctl``: seeing and steering workers on every host."""

from __future__ import annotations

import sys

import click

from pyresque.cli.support import (
    connect,
    connection_options,
    json_option,
    print_json,
    printable,
    table,
)
from pyresque.client.admin import queues, stats
from pyresque.client.admin.base import Problems
from pyresque.client.admin.workers import (
    Census,
    WorkerInfo,
    list_workers,
    send_command,
    worker_ids,
)
from pyresque.protocol.commands import COMMANDS

#: Queues and running workers ``pyresque info`` lists without --all.
_TOP = 20


@click.command("info")
@click.option("--all", "everything", is_flag=True, help="Every queue and worker, not the top 20.")
@json_option
@connection_options
def info_command(everything: bool, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Queues and their sizes, workers and what they run, processed and failed counts.

    The table lists the 20 longest queues and the first 20 workers running a job
    (--all: every queue and worker); --json gives every queue and worker."""
    resque = connect(redis_url, namespace)
    sizes = queues.sizes(resque)
    census = Census.read(resque, Problems())
    info = stats.info(resque, sizes, census)
    if as_json:
        workers = list_workers(resque)
        print_json({**info, "queue_sizes": sizes, "worker_list": [w.to_dict() for w in workers]})
        return
    click.echo(
        f"processed {info['processed']}  failed {info['failed']}  pending "
        f"{info['pending']}  workers {info['workers']} ({info['working']} working)"
    )
    click.echo()
    shown = sorted(sizes.items(), key=lambda q: (-q[1], q[0]))
    shown = shown if everything else shown[:_TOP]
    table([[q, n] for q, n in sorted(shown)], ["QUEUE", "SIZE"])
    if len(shown) < len(sizes):
        click.echo(f"(the {len(shown)} longest of {len(sizes)} queues; --all for every one)")
    workers = list_workers(resque, None if everything else census.working[:_TOP])
    if workers:
        click.echo()
        _workers_table(workers)
    if len(workers) < info["workers"]:
        click.echo(f"({len(workers)} of {info['workers']} workers; --all for every one)")


def _workers_table(workers: list[WorkerInfo]) -> None:
    rows = []
    for w in workers:
        job = w.job or {}
        payload = job.get("payload")
        klass = payload.get("class", "?") if isinstance(payload, dict) else ""
        queue, since = printable(job.get("queue")), printable(job.get("run_at"))
        doing = f"{printable(klass)} from {queue} since {since}" if w.job else ""
        rows.append([w.host, w.pid, ",".join(w.queues), w.state, w.processed, w.failed, doing])
    table(rows, ["HOST", "PID", "QUEUES", "STATE", "PROCESSED", "FAILED", "JOB"])


@click.command("workers")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Skip this many (by id).")
@click.option(
    "--limit", default=0, type=click.IntRange(min=0), help="List at most this many (0: all)."
)
@json_option
@connection_options
def workers_command(
    offset: int, limit: int, as_json: bool, redis_url: str | None, namespace: str
) -> None:
    """Registered workers on every host (Ruby, PHP and pyresque), by id: all of them,
    or --limit from --offset (read 200 per round trip)."""
    resque = connect(redis_url, namespace)
    ids = worker_ids(resque)
    shown = ids[offset : offset + limit] if limit else ids[offset:]
    workers = list_workers(resque, shown)
    if as_json:
        print_json([w.to_dict() for w in workers])
        return
    if workers:
        _workers_table(workers)
    else:
        click.echo("no workers")
    if len(workers) < len(ids):
        click.echo(
            f"({len(workers)} of {len(ids)} workers from {offset}; --offset/--limit for others)"
        )


@click.command("ctl")
@click.argument("command", type=click.Choice(list(COMMANDS)))
@click.argument("worker_ids", nargs=-1)
@click.option("--all", "all_workers", is_flag=True, help="Every pyresque worker.")
@connection_options
def ctl_command(
    command: str,
    worker_ids: tuple[str, ...],
    all_workers: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Send quit, term, pause, resume or kill-job to workers on any host. Exits 1 when
    a named worker is not a live pyresque worker."""
    resque = connect(redis_url, namespace)
    if all_workers:
        worker_ids = tuple(w.id for w in list_workers(resque) if w.pyresque)
        if not worker_ids:
            click.echo("no live pyresque workers")
    elif not worker_ids:
        raise click.UsageError("name the workers (see `pyresque workers`) or pass --all")
    missed = []
    for worker_id in worker_ids:
        if send_command(resque, worker_id, command):
            click.echo(f"{command} -> {printable(worker_id)}")
        else:
            missed.append(worker_id)
    for worker_id in missed:
        click.echo(
            f"pyresque: error: {printable(worker_id)} is not a live pyresque worker "
            "(see `pyresque workers`); nothing sent",
            err=True,
        )
    if missed:
        sys.exit(1)
