"""Bulk actions on the failed list as background operations with progress.

Retrying or removing every failure a filter matches reads the whole list: over
100,000 records that takes seconds to minutes, too long for a web request. So
``start`` records an operation in Redis (``pyresque:bulk:<id>``: what it does, how far
it got) and ``run`` carries it out a bounded chunk at a time (a retry: about 1,000
records read, then one short script per record retried; a removal: failure_sweep.py),
writing its progress after each chunk. The dashboard runs it in a thread and shows it
on the Failed page; ``pyresque failed retry/remove`` run it in the foreground and
``pyresque failed ops`` lists them.

Whoever runs an operation holds its lease (a key with a 60 s TTL, renewed after each
chunk). When that process dies, the lease expires and the operation shows as
*stalled*: ``resume`` (the dashboard does it when it shows the Failed page, or
``pyresque failed resume``) takes it over. A retry resumes from the last chunk
written, skipping records this operation already marked retried; a removal starts
its sweep again (it removes what still matches, so nothing is removed twice).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import redis

from pyresque.client.admin.base import Namespace
from pyresque.client.admin.failures import FailureFilter, exact
from pyresque.client.admin.items import parse_time
from pyresque.exceptions import MalformedPayload
from pyresque.protocol import scripts
from pyresque.protocol.connection import REDIS_DOWN, wrong_type
from pyresque.protocol.failure import Failure

log = logging.getLogger("pyresque.web")

#: retry or remove what the filters match; remove-retried: the records already retried.
ACTIONS = ("retry", "remove", "remove-retried")
#: How long a runner's lease lasts without a renewal (it renews after each chunk).
LEASE_MS = 60_000
#: Records a retry reads per chunk.
RETRY_CHUNK = 1000
#: Operations kept in the list (the oldest beyond go), and how long one is kept.
KEPT = 20
KEEP_SECONDS = 7 * 86400


class LeaseLost(RuntimeError):
    """Another process took the operation over (this one stalled past its lease)."""


def start(resque: Namespace, action: str, filters: FailureFilter) -> str:
    """Record a new operation (not run yet); returns its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}; use one of {', '.join(ACTIONS)}")
    filters = exact(filters)
    op_id = uuid.uuid4().hex[:12]
    keys, r = resque.keys, resque.redis
    fields: dict[str, str | int | float] = {
        "action": action,
        "queue": filters.queue or "",
        "class": filters.class_name or "",
        "exception": filters.exception or "",
        "state": "queued",
        "total": resque.failures.count(),
        "read": 0,
        "changed": 0,
        "runs": 0,
        "created_at": time.time(),
    }
    pipe = r.pipeline(transaction=True)
    pipe.hset(keys.bulk(op_id), items=[x for pair in fields.items() for x in pair])
    pipe.expire(keys.bulk(op_id), KEEP_SECONDS)
    pipe.zadd(keys.bulk_ops, {op_id: time.time()})
    pipe.execute()
    old = cast("list[bytes]", r.zrange(keys.bulk_ops, 0, -KEPT - 1))
    if old:  # their hashes expire by themselves
        r.zrem(keys.bulk_ops, *old)
    return op_id


def run(resque: Namespace, op_id: str, progress: Callable[[int], None] | None = None) -> bool:
    """Carry out (or resume) operation ``op_id`` to its end; False when another process
    holds it or it is over already. ``progress`` gets the records read per chunk."""
    keys, r = resque.keys, resque.redis
    token = uuid.uuid4().hex
    op = get(resque, op_id)
    if op is None or op["state"] in ("done", "failed"):
        return False
    if op["action"] not in ACTIONS:  # not written by start(): never guess what to do
        _update(resque, op_id, state="failed", error=f"unknown action {op['action']!r}")
        return False
    if not _hold(resque, op_id, token):
        return False
    filters = FailureFilter.of(op["queue"], op["class"], op["exception"])
    _update(resque, op_id, state="running", runs=op["runs"] + 1, error="")
    try:

        def advanced(read: int, changed: int = 0, cursor: int | None = None) -> None:
            if not _hold(resque, op_id, token):
                raise LeaseLost(f"bulk operation {op_id} was taken over by another process")
            pipe = r.pipeline(transaction=False)
            pipe.hincrby(keys.bulk(op_id), "read", read)
            pipe.hincrby(keys.bulk(op_id), "changed", changed)
            if cursor is not None:
                pipe.hset(keys.bulk(op_id), "cursor", cursor)
            pipe.execute()
            if progress:
                progress(read)

        if op["action"] == "retry":
            _retry(resque, op, filters, advanced)
        else:
            _update(resque, op_id, read=0, changed=0)  # a removal sweeps again from the start
            removed = resque.failures.remove_all(
                filters.queue,
                filters.class_name,
                filters.exception,
                retried_only=op["action"] == "remove-retried",
                progress=advanced,
            )
            _update(resque, op_id, changed=removed)
        _update(resque, op_id, state="done", finished_at=time.time())
    except LeaseLost:
        return False
    except REDIS_DOWN:
        raise  # the lease expires: the operation shows as stalled, to be resumed
    except Exception as exc:
        _update(resque, op_id, state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _release(resque, op_id, token)
    return True


def _release(resque: Namespace, op_id: str, token: str) -> None:
    """Give the lease back (when Redis is down, it expires by itself)."""
    try:
        scripts.run(resque.redis, "unlock", [resque.keys.bulk_lease(op_id)], [token])
    except REDIS_DOWN:
        pass


def _retry(
    resque: Namespace,
    op: dict[str, Any],
    filters: FailureFilter,
    advanced: Callable[[int, int, int | None], None],
) -> None:
    """Retry the records ``filters`` match from the operation's cursor on, a chunk at a
    time; on a resumed run, records it already marked retried are skipped."""
    resumed_after = op["created_at"] if op["runs"] else None
    cursor: int | None = op["cursor"]
    pick = filters.picker()
    while cursor is not None:
        found = resque.failures.scan(pick, cursor, False, 2**62, RETRY_CHUNK)
        retried = 0
        for index, item in found.found:
            failure = Failure.decode(index, item)
            done_at = parse_time(failure.retried_at)
            if resumed_after is not None and done_at is not None and done_at >= resumed_after:
                retried += 1  # by this operation, before its runner died: counted, not redone
                continue
            try:
                retried += resque.failures.requeue_record(failure)
            except MalformedPayload:
                pass  # a record that holds no job to retry stays as it is
        cursor = found.next
        advanced(found.read, retried, -1 if cursor is None else cursor)


def get(resque: Namespace, op_id: str) -> dict[str, Any] | None:
    """Operation ``op_id`` as shown (None when unknown or expired)."""
    return _ops(resque, [op_id])[0]


def ops(resque: Namespace) -> list[dict[str, Any]]:
    """The latest operations, newest first; ``stalled`` when unfinished with no runner.
    None listed when the list's key holds another type (anyone may write it)."""
    try:
        kept = cast("list[bytes]", resque.redis.zrange(resque.keys.bulk_ops, 0, -1))
    except redis.exceptions.ResponseError as exc:
        if not wrong_type(exc):
            raise
        return []
    ids = [i.decode("utf-8", "backslashreplace") for i in reversed(kept)]
    return [op for op in _ops(resque, ids) if op is not None]


def _ops(resque: Namespace, ids: list[str]) -> list[dict[str, Any] | None]:
    keys = resque.keys
    pipe = resque.redis.pipeline(transaction=False)
    for op_id in ids:
        pipe.hgetall(keys.bulk(op_id))
        pipe.exists(keys.bulk_lease(op_id))
    found = pipe.execute(raise_on_error=False)
    result: list[dict[str, Any] | None] = []
    for i, op_id in enumerate(ids):
        fields, running = found[2 * i], found[2 * i + 1]
        result.append(
            _view(op_id, fields, running) if isinstance(fields, dict) and fields else None
        )
    return result


def _view(op_id: str, fields: dict[bytes, bytes], running: Any) -> dict[str, Any]:
    text = {k.decode(): v.decode("utf-8", "backslashreplace") for k, v in fields.items()}

    def number(name: str) -> int:
        try:
            return int(float(text.get(name, "0")))
        except (ValueError, OverflowError):  # anyone may write the hash: nan, inf, text
            return 0

    state = text.get("state", "?")
    total, read = number("total"), number("read")
    cursor = text.get("cursor")
    return {
        "id": op_id,
        "action": text.get("action", "?"),
        "queue": text.get("queue", ""),
        "class": text.get("class", ""),
        "exception": text.get("exception", ""),
        "state": state,
        "stalled": state in ("queued", "running") and running == 0,
        "total": total,
        "read": read,
        "percent": 100 if state == "done" else min(99, 100 * read // total) if total else 0,
        "changed": number("changed"),
        "runs": number("runs"),
        "cursor": None if cursor == "-1" else number("cursor"),
        "created_at": float(number("created_at")),
        "finished_at": float(number("finished_at")) or None,
        "error": text.get("error", ""),
    }


def _hold(resque: Namespace, op_id: str, token: str) -> bool:
    """Take or renew the operation's lease for ``token`` (the cron leader's lease)."""
    key = resque.keys.bulk_lease(op_id)
    return bool(scripts.run(resque.redis, "cron_leader", [key], [token, LEASE_MS]))


def _update(resque: Namespace, op_id: str, **fields: str | int | float) -> None:
    pipe = resque.redis.pipeline(transaction=False)
    pipe.hset(resque.keys.bulk(op_id), items=[x for pair in fields.items() for x in pair])
    pipe.expire(resque.keys.bulk(op_id), KEEP_SECONDS)
    pipe.execute()


def in_background(resque: Namespace, op_id: str) -> threading.Thread:
    """Run operation ``op_id`` in a daemon thread of this process; an error is logged
    and recorded in the operation (nothing dies silently)."""

    def body() -> None:
        try:
            run(resque, op_id)
        except Exception:
            log.exception("bulk operation %s stopped", op_id)

    thread = threading.Thread(target=body, name=f"pyresque-bulk-{op_id}", daemon=True)
    thread.start()
    return thread


def resume_stalled(resque: Namespace) -> list[str]:
    """Resume in background threads the operations whose runner died; their ids."""
    stalled = [op["id"] for op in ops(resque) if op["stalled"]]
    for op_id in stalled:
        in_background(resque, op_id)
    return stalled
