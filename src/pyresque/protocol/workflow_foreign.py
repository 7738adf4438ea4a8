"""Workflow jobs released onto a queue whose key holds another type (the user's key:
protocol/foreign_queues.py). The push would have failed the call that released them (the
finish of their last dependency, recorded halfway), so lib_workflow.lua's ``wf_release``
pushes nothing: the job's record holds ``foreign`` (queue, payload, the key's type) and
the outbox ``foreign <id>``. The heartbeats' outbox drain (recovery.py, within a lease) then
fails the job as recovery fails one its queue cannot take back: a record in ``failed``
(``pyresque.ForeignQueue``, to retry once the key is a list again) and its status, in
one transaction with the outbox entry replaced by ``settle <id>``; then the settle
(wf_settle.lua) counts it as failed in its batches, and its dependents follow their
policy (cancelled, or run)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import redis
from redis.exceptions import WatchError

from pyresque.protocol.connection import raw
from pyresque.protocol.failed_record import foreign_failure
from pyresque.protocol.keys import Keys
from pyresque.protocol.status import failed_packet
from pyresque.protocol.workflow import drain_outbox as drain_others
from pyresque.protocol.workflow import record_of, settle

_ENTRY = "foreign "


def _due(client: redis.Redis, keys: Keys, before: float) -> Iterator[str]:
    """The ids of the outbox's ``foreign`` entries recorded before ``before`` (ms)."""
    for entry, score in client.zscan_iter(keys.wf_outbox, match=f"{_ENTRY}*"):
        text = raw(entry).decode("utf-8", "replace")
        if score <= before and text.startswith(_ENTRY):
            yield text.removeprefix(_ENTRY)


def fail_foreign(client: redis.Redis, keys: Keys, worker: str = "", older_than_ms: int = 0) -> int:
    """Fail each job whose ``foreign <id>`` entry is older than ``older_than_ms`` (see the
    module), then settle it. Done twice, the second finds no entry. Returns how many."""
    keys = keys.home
    before = time.time() * 1000 - older_than_ms if older_than_ms else float("inf")
    done = 0
    for job_id in list(_due(client, keys, before)):
        done += _fail_and_settle(client, keys, job_id, worker)
    return done


def _fail_and_settle(client: redis.Redis, keys: Keys, job_id: str, worker: str = "") -> bool:
    """Fail ``job_id`` (``_fail``), then settle it; False when another caller did."""
    if not _fail(client, keys, job_id, worker):
        return False
    settle(client, keys, job_id, "queued", "failed")
    return True


def _fail(client: redis.Redis, keys: Keys, job_id: str, worker: str) -> bool:
    """Record ``job_id``'s failure and its settle in place of its ``foreign`` entry; False
    when the entry went meanwhile (another caller did it)."""
    entry = f"{_ENTRY}{job_id}"
    for _ in range(5):  # the outbox changes only when jobs end: a few tries suffice
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.wf_outbox)  # type: ignore[no-untyped-call]  # redis-py: untyped
                if pipe.zscore(keys.wf_outbox, entry) is None:
                    return False
                found = record_of(pipe.hget(keys.wf_jobs, job_id)).get("foreign")
                pipe.multi()
                if isinstance(found, dict) and all(isinstance(found.get(f), str) for f in "qpt"):
                    _failed(pipe, keys, found["q"], found["p"], found["t"], worker)
                pipe.zrem(keys.wf_outbox, entry)  # one not pyresque's: the settle only
                pipe.zadd(keys.wf_outbox, {f"settle {job_id}": int(time.time() * 1000)})
                pipe.execute()
                return True
            except WatchError:
                continue
    return False  # left for a drain


def _failed(
    pipe: redis.client.Pipeline, keys: Keys, queue: str, text: str, found: str, worker: str
) -> None:
    """Queue on ``pipe`` the failure of the job ``text`` that ``queue`` (its key holding a
    ``found``) could not take, as recovery.py records one."""
    record, status = foreign_failure(keys, queue, text, found, worker)
    pipe.rpush(keys.failed, record)
    pipe.incr(keys.stat("failed"))
    if status is not None:
        pipe.set(status, failed_packet(), xx=True, ex=86400)


def drain_outbox(client: redis.Redis, keys: Keys, older_than_ms: int) -> int:
    """workflow.py's ``drain_outbox``, its ``foreign`` entries failed and settled here:
    one read of the outbox per pass. Returns how many entries were read."""
    home = keys.home
    fail = functools.partial(_fail_and_settle, client, home)
    return drain_others(client, home, older_than_ms, foreign=fail)
