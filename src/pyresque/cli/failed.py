"""``pyresque failed``: list, retry and remove failure records (records of any shape)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from pyresque.cli.support import connect, connection_options, json_option, print_json, printable
from pyresque.client.admin import bulk, failures
from pyresque.client.admin.base import Namespace
from pyresque.client.admin.failed_trim import trim as trim_failed
from pyresque.client.admin.failures import FailureFilter
from pyresque.protocol import strict_json
from pyresque.protocol.failure import Failure


@click.group("failed")
def failed_group() -> None:
    """List, retry and remove failed jobs."""


def _filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for name in ("exception", "class", "queue"):
        func = click.option(f"--{name}", f"{name}_filter", help=f"Only records with this {name}.")(
            func
        )
    return func


@failed_group.command("list")
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@_filter_options
@json_option
@connection_options
def failed_list(
    offset: int,
    limit: int,
    queue_filter: str | None,
    class_filter: str | None,
    exception_filter: str | None,
    as_json: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Failure records, oldest first, with their index (for retry/remove).

    With a filter, the records from index --offset on are read until --limit match;
    the line after them gives the --offset to read on from."""
    resque = connect(redis_url, namespace)
    filters = FailureFilter(queue_filter, class_filter, exception_filter)
    total = resque.failures.count()
    if filters.active:
        page, next_offset = failures.matching(resque, filters, offset, limit)
    else:
        page = resque.failures.list(offset, limit)
        next_offset = offset + limit if offset + limit < total else None
    if as_json:
        print_json([_failure_json(f) for f in page])
        return
    what = "matching record(s)" if filters.active else "record(s)"
    click.echo(f"{total} failed job(s), showing {len(page)} {what} from index {offset}")
    for f in page:
        retried = f"  (retried {printable(f.retried_at)})" if f.retried_at else ""
        click.echo(
            f"[{f.index}] {printable(f.failed_at)}  {printable(f.queue)}  "
            f"{printable(f.class_name)}({printable(f.args)[1:-1]})"
            f"\n      {printable(f.exception)}: {printable(f.error)}{retried}"
            if f.parsed
            else f"[{f.index}] not a failure record: {printable(f.raw)}"
        )
    if next_offset is not None:
        click.echo(f"more: --offset {next_offset}")


def _failure_json(failure: Failure) -> dict[str, Any]:
    """A record as its JSON fields (or its raw text when it is not a record), with its index."""
    try:
        record = strict_json.loads(failure.raw)
    except strict_json.BadJSON:
        record = None
    if isinstance(record, dict) and failure.parsed:
        return {"index": failure.index, **record}
    return {"index": failure.index, "raw": failure.raw.decode("utf-8", "backslashreplace")}


def _bulk(
    resque: Namespace,
    indexes: tuple[int, ...],
    filters: FailureFilter | None,
    one: Callable[[Namespace, int], bool],
    action: str,
    label: str,
) -> None:
    if indexes:
        try:
            done = sum(1 for i in sorted(indexes, reverse=True) if one(resque, i))
        except ValueError as exc:  # a record that holds no job to retry
            raise click.ClickException(str(exc)) from None
    elif filters is not None:
        try:
            op_id = bulk.start(resque, action, filters)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        done = _run(resque, op_id, label)
    else:
        raise click.UsageError(
            "give record indexes, a filter (--queue/--class/--exception) or --all"
        )
    click.echo(f"{label}: {done}")


def _run(resque: Namespace, op_id: str, label: str) -> int:
    """Run bulk operation ``op_id`` here with a progress bar; what it changed."""
    op = bulk.get(resque, op_id)
    if op is None:
        raise click.ClickException(f"no bulk operation {op_id} (it may have expired)")
    click.echo(f"operation {op_id}: if this stops, `pyresque failed resume {op_id}`", err=True)
    with click.progressbar(length=op["total"], label=label, file=sys.stderr) as bar:
        ran = bulk.run(resque, op_id, bar.update)
    if not ran:
        raise click.ClickException(
            f"operation {op_id} is run by another process or has ended (`pyresque failed ops`)"
        )
    op = bulk.get(resque, op_id)
    return int(op["changed"]) if op else 0


def _bulk_command(
    name: str,
    summary: str,
    label: str,
    one: Callable[[Namespace, int], bool],
    action: str,
) -> None:
    """Define ``pyresque failed NAME``: act on record indexes, or on every record that
    matches the filters (with a progress bar)."""

    @failed_group.command(name, help=summary)
    @click.argument("indexes", nargs=-1, type=int)
    @click.option("--all", "all_records", is_flag=True, help="Every record (matching filters).")
    @_filter_options
    @connection_options
    def command(
        indexes: tuple[int, ...],
        all_records: bool,
        queue_filter: str | None,
        class_filter: str | None,
        exception_filter: str | None,
        redis_url: str | None,
        namespace: str,
    ) -> None:
        filters = FailureFilter(queue_filter, class_filter, exception_filter)
        chosen = filters if filters.active or all_records else None
        _bulk(connect(redis_url, namespace), indexes, chosen, one, action, label)


_bulk_command(
    "retry",
    "Put failed jobs back on their queues (records stay, marked retried_at).",
    "retried",
    failures.retry_at,
    "retry",
)
_bulk_command("remove", "Remove failure records.", "removed", failures.remove_at, "remove")


@failed_group.command("ops")
@json_option
@connection_options
def failed_ops(as_json: bool, redis_url: str | None, namespace: str) -> None:
    """The latest bulk retries and removals (run here, or by the dashboard), newest first."""
    found = bulk.ops(connect(redis_url, namespace))
    if as_json:
        print_json(found)
        return
    for op in found:
        state = "stalled" if op["stalled"] else op["state"]
        what = " ".join(
            f"--{k} {printable(op[k])}" for k in ("queue", "class", "exception") if op[k]
        )
        click.echo(
            f"{op['id']}  {op['action']} {what or '(all)'}  {state}  {op['read']}/{op['total']} "
            f"read  {op['changed']} done{'  ' + printable(op['error']) if op['error'] else ''}"
        )
    if not found:
        click.echo("no bulk operations")


@failed_group.command("resume")
@click.argument("op_id")
@connection_options
def failed_resume(op_id: str, redis_url: str | None, namespace: str) -> None:
    """Resume a stalled bulk operation (its process stopped) here, to its end."""
    click.echo(f"done: {_run(connect(redis_url, namespace), op_id, 'resumed')}")


@failed_group.command("clear")
@click.option("--retried", is_flag=True, help="Only records that were retried.")
@connection_options
def failed_clear(retried: bool, redis_url: str | None, namespace: str) -> None:
    """Delete every failure record (or only the retried ones)."""
    resque = connect(redis_url, namespace)
    done = failures.clear_retried(resque) if retried else failures.clear_failed(resque)
    click.echo(f"cleared: {done}")


@failed_group.command("trim")
@click.option("--keep", type=click.IntRange(0), help="Keep only the newest N records.")
@click.option(
    "--older-than", type=click.FloatRange(0), help="Remove records that failed over N seconds ago."
)
@connection_options
def failed_trim(
    keep: int | None, older_than: float | None, redis_url: str | None, namespace: str
) -> None:
    """Remove the oldest failure records (a retention policy: Resque keeps them all).
    Run it from cron to cap the list; record indexes shift by what is removed."""
    if keep is None and older_than is None:
        raise click.UsageError("give --keep and/or --older-than")
    resque = connect(redis_url, namespace)
    click.echo(f"trimmed: {trim_failed(resque, keep, older_than)}")
