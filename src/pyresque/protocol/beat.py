"""One heartbeat of a worker in Redis (worker/heartbeat.py decides when, and what).

Two round trips. heartbeat.lua reads the server's clock, the expired leases, the jobs
marked cancelled and Ruby's ``pause-all-workers``, and replaces keys of a wrong type.
Then plain commands, none in a script, write what carries the worker's id: the lease
(that clock + its length), ``workers``, Ruby's ``workers:heartbeat``, and the keys named
after the id when needed (the started key, the paused marker, the control list). The
id is Resque's ``host:pid:queues``, ~120 kB over 10,000 queues: in a script it cost
Redis ~145 µs to enter Lua and as much again per command that wrote it (a beat held
Redis 0.25 to 0.5 ms quiet, to 4.5 ms loaded); a plain command costs ~30 µs (a hash of
the id), and other clients' commands run between them.

The lease is written after the clock was read: its expiry is no later than that read
plus its length, so a job may run on it until ``lease_deadline`` of the first call's
sending, as before. A renewal that lands late (the second round trip was slow) is the
lapse any late renewal is: the worker's jobs stopped at the last deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import redis

from pyresque.protocol import cluster, scripts
from pyresque.protocol.connection import wrong_type
from pyresque.protocol.durability import Replicas
from pyresque.protocol.keys import Keys

#: Control commands read per beat at most; more are read on the next beats.
CONTROL_MOST = 1000
_UNFENCED = nullcontext()  # the writes are always sent


@dataclass
class Beat:
    """What one beat read; ``again``: the worker was not in ``workers`` (its first beat,
    a reap, a prune, a Redis that lost its data)."""

    commands: list[bytes]
    expired: list[bytes]
    replaced: list[bytes]
    marked: list[bytes]
    pause_all: bytes | None
    again: bool
    more_commands: bool  # CONTROL_MOST read: more may wait


def one_beat(
    client: redis.Redis,
    keys: Keys,
    worker_id: str,
    lease_ms: int,
    *,
    started: str = "",
    marker: str = "",
    read_control: bool = False,
    durability: Replicas | None = None,
    fence: AbstractContextManager[object] = _UNFENCED,
) -> tuple[Beat, bool]:
    """One beat and whether its renewal is as durable as asked. ``started``: the start
    time, when the worker registers (written if unset); ``marker``: '1' sets the paused
    marker (with the lease's TTL), '0' deletes it, '' leaves it; ``read_control``: read
    (and empty) the control list. The writes are sent inside ``fence`` (the heartbeat's
    stops them once the worker stops: worker/heartbeat.py)."""
    head = [keys.leases, keys.workers, keys.heartbeats, keys.cancels, keys.pause_all]
    if started:
        head.append(keys.worker_started(worker_id))
    now, expired, replaced, marked, pause = scripts.run(
        client, "heartbeat", head, ["1" if started else ""]
    )
    control = keys.control(worker_id)

    def writes(pipe: Any) -> None:
        pipe.zadd(keys.leases, {worker_id: now + lease_ms})
        pipe.sadd(keys.workers, worker_id)
        pipe.hset(keys.heartbeats, worker_id, _iso8601(now))
        if started:
            pipe.set(keys.worker_started(worker_id), started, nx=True)
        if marker == "1":
            pipe.set(keys.paused(worker_id), "1", px=lease_ms)
        elif marker == "0":
            pipe.delete(keys.paused(worker_id))
        if read_control:  # read here, taken off once the writes succeeded
            pipe.lrange(control, 0, CONTROL_MOST - 1)

    with fence:
        replies, durable = _write(client, keys.leases, writes, durability)
    listed = replies.pop() if read_control else None
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    commands: list[bytes] = []
    if isinstance(listed, redis.exceptions.ResponseError) and wrong_type(listed):
        # Hand-written or hostile: read by the next beats once replaced.
        replaced += scripts.run(client, "foreign_clear", [control], ["list"])[::2]
    elif isinstance(listed, Exception):
        raise listed
    elif listed:
        # Out of memory, Redis refuses the writes but would have let a pop through: the
        # commands are taken only now (``ctl`` appends: the first ones are those read).
        commands = listed
        client.ltrim(control, len(commands), -1)
    again = replies[1] == 1
    more = len(commands) == CONTROL_MOST
    return Beat(commands, expired, replaced, marked, pause or None, again, more), durable


def _write(
    client: redis.Redis, home: str, writes: Callable[[Any], None], durability: Replicas | None
) -> tuple[list[Any], bool]:
    """The commands ``writes`` queues on a pipeline, in one round trip (no transaction:
    other clients run between them), and whether enough replicas acknowledged them (a
    ``WAIT`` on the connection that sent them: on Cluster, of the master of ``home``'s
    slot, where they all are)."""
    if durability is not None and cluster.is_cluster(client):
        return cluster.on_node_of(client, home, lambda node: _write(node, home, writes, durability))
    pipe = client.pipeline(transaction=False)
    writes(pipe)
    if durability is not None:
        pipe.wait(durability.count, durability.timeout_ms)
    replies = pipe.execute(raise_on_error=False)
    if durability is None:
        return replies, True
    acked = replies.pop()
    if isinstance(acked, Exception):
        raise acked
    return replies, acked >= durability.count


def _iso8601(now_ms: int) -> str:
    """Ruby Resque's heartbeat format ("2026-01-12T20:23:55Z"), UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms // 1000))
