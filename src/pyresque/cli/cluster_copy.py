"""``pyresque cluster-copy``: move a single Redis namespace's queued jobs to Redis Cluster."""

from __future__ import annotations

import click
import redis

from pyresque.cli.support import fail, printable, stop_on_signals
from pyresque.client.admin.cluster_copy import ClusterCopy, LeftBehind
from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.protocol import durability
from pyresque.protocol.cluster import is_cluster
from pyresque.protocol.connection import connect, ping
from pyresque.protocol.keys import DEFAULT_NAMESPACE
from pyresque.protocol.targets import URL_SETTING


@click.command("cluster-copy")
@click.option("--from", "source_url", required=True, help="The single Redis: redis://host:6379/0.")
@click.option(
    "--to", "target_url", required=True, help="The cluster: redis+cluster://host1:7000,host2:7001/."
)
@click.option(
    "--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="The namespace, both sides."
)
@click.option("--queue", "queues", multiple=True, help="Copy this queue only (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show the counts only; copy nothing.")
def cluster_copy_command(
    source_url: str, target_url: str, namespace: str, queues: tuple[str, ...], dry_run: bool
) -> None:
    """Move the queued jobs of a namespace from a single Redis into the Redis Cluster
    layout, queue by queue, each job's bytes unchanged; the cluster's idle workers wake
    as on an enqueue. Stop the old Redis's workers first (a job one of them takes while
    it is being copied runs twice); producers may already write to the cluster.

    A job is removed from the old Redis only after the cluster acknowledged it: a copy
    stopped anywhere (even by SIGKILL) loses no job, and when run again duplicates at
    most one job per queue. INT/TERM stop it after the current job. Then the delayed
    jobs (of the --queue ones, when given) go to their queues' schedules on the
    cluster the same way, and (without --queue) the failure records, each to its
    queue's slot. Stats are left on the old Redis (counted at the end)."""
    if not is_cluster(target_url):
        raise click.UsageError("--to must be a Redis Cluster URL: redis+cluster://host:port,...")
    if is_cluster(source_url):
        raise click.UsageError("--from must be a single Redis (redis://...), not a cluster")
    source, target = _reach(source_url, "--from"), _reach(target_url, "--to")
    try:
        copy = ClusterCopy(source, target, namespace, durability.from_env())
    except ValueError as exc:  # a namespace Cluster cannot use
        raise click.UsageError(str(exc)) from exc
    names = copy.queues(list(queues))
    if dry_run:
        for name, length in zip(names, copy.lengths(names), strict=True):
            click.echo(f"{printable(name)}: {length} jobs to copy")
    else:
        with stop_on_signals() as stopping:
            for name in names:
                done = copy.copy_queue(name, stopping.is_set)
                note = f" ({done.taken_meanwhile} taken meanwhile by an old worker: run twice)"
                click.echo(
                    f"{printable(name)}: {done.copied} jobs copied"
                    + (note if done.taken_meanwhile else "")
                )
                if stopping.is_set():
                    fail("stopped; run the same command again to copy the rest", 1)
            moved = copy.copy_delayed(list(queues), stopping.is_set)
            click.echo(f"delayed: {moved} jobs copied")
            if not queues and not stopping.is_set():  # a whole namespace: its failures too
                click.echo(f"failed: {copy.copy_failures(stopping.is_set)} records copied")
            if stopping.is_set():
                fail("stopped; run the same command again to copy the rest", 1)
    _report(copy.left_behind(), dry_run, bool(queues))


def _reach(url: str, option: str) -> redis.Redis:
    """A client to ``url``, reached once; its errors name ``option``, where the URL came
    from, not REDIS_URL."""
    try:
        client = connect(url)
        ping(client)
    except (RedisUnavailable, BadRedisURL) as exc:
        raise type(exc)(str(exc).replace(URL_SETTING, option)) from None
    return client


def _report(left: LeftBehind, dry_run: bool, some_queues: bool) -> None:
    """One line per kind of data the copy does not move (a dry run: the delayed jobs
    and failures it would try to copy)."""
    if dry_run:
        click.echo(
            f"delayed: {left.delayed_jobs} jobs (at {left.delayed_timestamps} timestamps) to "
            "copy, but those that name no queue (or not one of --queue)"
        )
    elif left.delayed_jobs:
        click.echo(
            f"left behind: {left.delayed_jobs} delayed jobs (at {left.delayed_timestamps} "
            "timestamps) that name no queue (or not one of --queue), or were not a job: "
            "see `pyresque delayed list` on the old Redis"
        )
    if dry_run and not some_queues:
        click.echo(f"failed: {left.failures} records to copy")
    elif left.failures:
        why = "not copied with --queue" if some_queues else "added meanwhile: run it again"
        click.echo(f"left behind: {left.failures} failures ({why})")
    click.echo(f"left behind: stats (processed {left.processed}, failed {left.failed})")
