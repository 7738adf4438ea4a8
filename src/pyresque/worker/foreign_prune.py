"""Pruning dead Ruby and PHP workers the Resque way, and unregistering any worker.

Ruby and PHP workers have no lease. They are pruned as Resque prunes them: on the
same host when their pid is gone, elsewhere when their Ruby heartbeat is older than
Ruby's prune interval; a job they were running goes to ``failed`` as a DirtyExit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any, cast

import redis

from pyresque.protocol import scripts, strict_json
from pyresque.protocol.connection import text
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import registry
from pyresque.worker import peer_prune

log = logging.getLogger("pyresque.recovery")

#: Ruby prunes workers whose heartbeat is older than this (Resque.prune_interval).
RUBY_PRUNE_INTERVAL = 300


def worker_keys(keys: Keys, worker_id: str, landing: Sequence[str] = ()) -> list[str]:
    """KEYS for reap.lua; ``landing``: the worker's other landing lists, as read
    (protocol/landings.py)."""
    return [
        keys.workers,
        keys.worker(worker_id),
        keys.worker_started(worker_id),
        keys.heartbeats,
        keys.stat("processed", worker_id),
        keys.stat("failed", worker_id),
        keys.leases,
        keys.inflight(worker_id),
        keys.failed,
        keys.stat("failed"),
        keys.landing(worker_id),
        registry(keys, worker_id),
        *(key for key in landing if key != keys.landing(worker_id)),
    ]


def prune_foreign(client: redis.Redis, keys: Keys, recoverer: str) -> int:
    """Resque's pruning, for workers without a pyresque lease; returns how many."""
    if not client.set(keys.pruning_lock, peer_prune.LOCK_MARK + recoverer, nx=True, ex=60):
        return 0
    pruned = 0
    leased = {text(m) for m in cast("list[bytes]", client.zrange(keys.leases, 0, -1))}
    heartbeats = cast("dict[bytes, bytes]", client.hgetall(keys.heartbeats))
    beats = {i: v.decode("utf-8", "replace") for k, v in heartbeats.items() if (i := _id(k))}
    secs, micros = client.time()
    now = float(secs) + micros / 1e6
    host = socket.gethostname()
    members = cast("set[bytes]", client.smembers(keys.workers))
    registered = {i for i in map(_id, members) if i}
    for worker_id in sorted(registered | set(beats)):
        if worker_id in leased:
            continue
        parts = worker_id.split(":", 2)
        beat = peer_prune.parse_time(beats.get(worker_id))
        if beat is not None and now - beat > RUBY_PRUNE_INTERVAL:
            pruned += _reap_foreign(client, keys, worker_id, "Resque::PruneDeadWorkerDirtyExit")
        elif len(parts) == 3 and parts[0] == host and not peer_prune.pid_alive(parts[1]):
            pruned += _reap_foreign(client, keys, worker_id, "Resque::DirtyExit")
    return pruned


def _reap_foreign(client: redis.Redis, keys: Keys, worker_id: str, exception: str) -> int:
    current = cast("bytes | None", client.get(keys.worker(worker_id)))
    record = ""
    if current:
        # Another worker's record may hold anything: never let it stop our start-up.
        try:
            working = strict_json.loads(current)
        except strict_json.BadJSON:
            working = None
        payload: Any
        if isinstance(working, dict):
            payload, queue = working.get("payload"), working.get("queue")
            queue = queue if isinstance(queue, str) else ""
        else:
            payload, queue = current.decode("utf-8", "replace"), ""
        klass = payload.get("class", "?") if isinstance(payload, dict) else "?"
        error = (
            "Job still being processed"
            if exception == "Resque::DirtyExit"
            else f"Worker {worker_id} did not gracefully exit while processing {klass}"
        )
        record = failure_record(payload, exception, error, [], worker_id, queue)
    args = [worker_id, "0", current or "", record]
    done = scripts.run(client, "reap", worker_keys(keys, worker_id), args)
    if done:
        log.warning(
            "pruned dead worker %s%s", worker_id, "; its job was moved to failed" if record else ""
        )
    return int(done)


def _id(member: bytes) -> str:
    """A worker id as text; '' (skipped) for one that is not UTF-8: no Resque writes
    such an id, and its keys could not be named to prune it."""
    try:
        return member.decode()
    except UnicodeDecodeError:
        log.warning("skipping a registered worker id that is not UTF-8: %r", member[:80])
        return ""
