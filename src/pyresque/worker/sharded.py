"""What a worker does differently on Redis Cluster, where each queue has a slot of its
own (keys.py): a claim is a call per queue, in that queue's slot. An idle worker whose
queues are in several slots waits on each slot at once (wake_wait.py: Redis refuses a
BLPOP over keys of several slots).
"""

from __future__ import annotations

from typing import Any

from pyresque.protocol.keys import Keys


def claim_call(
    keys: Keys, worker_id: str, tokens: list[str], queue: str, woken: bool
) -> tuple[list[str], list[Any]]:
    """claim.lua's KEYS and ARGV for one queue, all in its slot: the shard's leases and
    the worker's in-flight hash there, the queue and (woken) its wake list."""
    shard = keys.for_queue(queue)
    call_keys = [shard.leases, shard.inflight(worker_id), shard.queue(queue)]
    if woken:
        call_keys.append(shard.wake(queue))
    return call_keys, [worker_id, " ".join(tokens), "1" if woken else "", queue]
