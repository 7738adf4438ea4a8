"""What a worker does differently on Redis Cluster, where each queue has a slot of its
own (keys.py): a claim is a call per queue, in that queue's slot, and an idle worker
whose queues are in several slots waits on each slot at once.

Waiting: Redis refuses a BLPOP over keys of several slots, so there is one BLPOP per
slot, each from a thread of its own, and the first wake-up token ends the wait; the
others end at their timeout, and a token one of them takes after the wait ended is
put back for another worker. So a worker serving queues on every master still starts
a job within milliseconds of its enqueue.
"""

from __future__ import annotations

import queue as queues
import threading
import time
from typing import Any

import redis
from redis.crc import key_slot

from pyresque.protocol.keys import Keys

#: What a waiting thread hands back: a BLPOP reply, None (timeout) or the error.
_Reply = list[bytes] | None | Exception


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


def wait(client: redis.Redis, keys: list[str], timeout: float) -> list[bytes] | None:
    """BLPOP ``keys`` (of any slots) for up to ``timeout`` seconds: the first reply."""
    slots: dict[int, list[str]] = {}
    for key in keys:
        slots.setdefault(key_slot(key.encode()), []).append(key)
    if len(slots) == 1:
        return client.blpop(keys, timeout=timeout)  # type: ignore[return-value]
    replies: queues.SimpleQueue[_Reply] = queues.SimpleQueue()
    ended = threading.Event()
    lock = threading.Lock()

    def wait_on(group: list[str]) -> None:
        reply: _Reply
        try:
            reply = client.blpop(group, timeout=timeout)  # type: ignore[assignment]
        except Exception as exc:  # handed to the waiter, or dropped once it is gone
            reply = exc
        with lock:
            if not ended.is_set():
                replies.put(reply)
                return
        _give_back(client, reply)

    for group in slots.values():
        threading.Thread(target=wait_on, args=(group,), daemon=True).start()
    deadline = time.monotonic() + timeout + 1.0  # each BLPOP ends by its own timeout
    first: _Reply = None
    try:
        for _ in slots:
            try:
                first = replies.get(timeout=max(deadline - time.monotonic(), 0))
            except queues.Empty:
                break
            if first is not None:
                break
    finally:
        with lock:
            ended.set()
        while not replies.empty():  # replies that came with the first: not ours to keep
            _give_back(client, replies.get())
    if isinstance(first, Exception):
        raise first
    return first


def _give_back(client: redis.Redis, reply: _Reply) -> None:
    """Put back a wake-up token taken after the wait ended (another idle worker's)."""
    if isinstance(reply, (list, tuple)):  # BLPOP's reply: (key, element)
        try:
            client.rpush(reply[0], reply[1])
        except Exception:
            pass  # the token only shortens a wait: without it a worker looks at its timeout
