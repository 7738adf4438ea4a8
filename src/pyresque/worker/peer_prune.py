"""Ruby and php-resque workers pruning a dead pyresque worker: nothing lost, nothing run twice.

When a Ruby or PHP worker starts, it unregisters the workers it believes dead
(spec 3.5): on its host those whose pid is gone, anywhere those whose Ruby
heartbeat is older than 300 s. Ruby moves the job in ``worker:<id>`` to
``failed`` (``Resque::DirtyExit`` or ``Resque::PruneDeadWorkerDirtyExit``);
php-resque just drops it. pyresque's in-flight records survive both, so lease
recovery would run again a job that Ruby already failed. Before it recovers a
dead worker, recovery.py therefore

1. **fences** the worker (peer_fence.lua, atomic): while Resque's pruning lock is
   young and held by a Ruby worker, a prune may be under way and recovery waits
   for a later heartbeat; otherwise it deletes ``worker:<id>``, so a prune that
   starts afterwards finds no job to fail;
2. if a peer unregistered the worker (it left ``workers``), looks for the peer's
   failure records of its jobs among the last ``SCAN`` records of ``failed``.
   Those jobs stay failed and are not requeued; every other job is requeued,
   as after php-resque's prune (which records nothing).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import redis

from pyresque.protocol import scripts, strict_json
from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload

log = logging.getLogger("pyresque.recovery")

#: Ruby's lock lives Resque.heartbeat_interval (60 s); a prune is assumed to finish
#: within this many seconds of taking it.
PRUNE_GRACE = 15
RUBY_LOCK_TTL = 60
#: How many of the newest failure records are searched for a peer's.
SCAN = 1000
#: What Ruby's pruning records (worker.rb unregister_worker / prune_dead_workers).
PEER_EXCEPTIONS = ("Resque::DirtyExit", "Resque::PruneDeadWorkerDirtyExit")
#: pyresque's value of the pruning lock starts with this (recovery.prune_foreign).
LOCK_MARK = "pyresque "


def fence(client: redis.Redis, keys: Keys, worker_id: str) -> bool:
    """False while a Ruby worker may be pruning; else clears ``worker:<id>`` (True)."""
    args = [(RUBY_LOCK_TTL - PRUNE_GRACE) * 1000, LOCK_MARK]
    return bool(
        scripts.run(client, "peer_fence", [keys.pruning_lock, keys.worker(worker_id)], args)
    )


def failed_by_peer(
    client: redis.Redis,
    keys: Keys,
    worker_id: str,
    entries: dict[Any, Any],
    landed: Sequence[bytes] = (),
) -> set[bytes]:
    """Claim tokens (as read) of the worker's in-flight ``entries`` that a peer's prune
    moved to ``failed``, and ``b"landed:<i>"`` for each of the payloads on its landing
    list (``landed``) it moved; empty unless a peer unregistered the worker."""
    if client.sismember(keys.workers, worker_id):
        return set()
    shown = _peer_failures(client, keys, worker_id)
    jobs = [(raw(token), _inflight_payload(raw(record))) for token, record in entries.items()]
    jobs += [(b"landed:%d" % i, _payload(item)) for i, item in enumerate(landed)]
    tokens: set[bytes] = set()
    for token, payload in jobs:
        match = next((p for p in shown if payload and _same_job(payload, p)), None)
        if match is not None:
            shown.remove(match)  # one record accounts for one job
            tokens.add(token)
    return tokens


def _peer_failures(client: redis.Redis, keys: Keys, worker_id: str) -> list[dict[str, Any]]:
    """The payloads of the peers' prune records for ``worker_id`` among the newest records."""
    needle = worker_id.encode()
    found = []
    try:
        newest = cast("list[bytes]", client.lrange(keys.failed, -SCAN, -1))
    except redis.exceptions.ResponseError as exc:  # not a list: no record to find there
        log.warning("cannot search %s for peers' failure records: %s", keys.failed, exc)
        return []
    for data in newest:
        if needle not in data:  # most records are not about this worker: skip decoding
            continue
        try:
            record = strict_json.loads(data)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and record.get("worker") == worker_id
            and record.get("exception") in PEER_EXCEPTIONS
            and isinstance(record.get("payload"), dict)
        ):
            found.append(record["payload"])
    return found


def _inflight_payload(record: bytes) -> Payload | None:
    """The job of an in-flight record (claim.lua); None when it is not readable JSON."""
    try:
        entry = strict_json.loads(record)
        payload = entry.get("payload") if isinstance(entry, dict) else None
        return Payload.decode(payload) if isinstance(payload, str) else None
    except ValueError:  # not UTF-8, not JSON, not a job: no peer record can show it
        return None


def _payload(item: bytes) -> Payload | None:
    """The job of a landing list's item; None when it is not one."""
    try:
        return Payload.decode(item)
    except ValueError:
        return None


def _same_job(payload: Payload, shown: dict[str, Any]) -> bool:
    """Whether a peer's record shows this job (Ruby re-encodes it: compare what survives)."""
    if shown.get("class") != payload.class_name:
        return False
    if payload.id:
        return shown.get("id") == payload.id
    return shown.get("args") == payload.args


def pid_alive(pid_text: str) -> bool:
    """Whether a process of this host with that pid exists (a Resque worker's id names it)."""
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def parse_time(text: str | None) -> float | None:
    """A Ruby heartbeat's ISO 8601 time as epoch seconds, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
