"""An idle worker's wait on its queues' wake-up lists, at most GROUP keys per command.

A BLPOP costs Redis about 0.2 to 0.5 µs per key, paid in the command and again when it
is served or times out: one BLPOP over the 10,001 wake lists of a worker of ``*`` over
per-tenant queues held Redis ~4 ms on a quiet machine (docs/scaling.md). And on
Cluster a BLPOP takes the keys of one slot only. So the keys are grouped, by slot
(Cluster), then in runs of at most GROUP in priority order, and each group is waited
on by a BLPOP of its own, from a thread of its own; the first reply ends the wait. One
group (up to GROUP queues on a single Redis, or all in one slot) is waited on in the
caller's thread, on its own connection, as before: no thread, no hop.

The groups' waits outlive a wait: a BLPOP still pending when another group's token
ended the wait goes on, and serves the worker's next wait, so a worker woken by one
token sends one BLPOP again (its group's), not one per group. A token such a pending
BLPOP takes while no wait is on (the worker is busy) is put back at once for another
worker. A thread sends a BLPOP only while a wait is on, so it holds one pooled
connection then; the waits of a worker's processors share the groups (one token wakes
one of them). When the keys change (a glob worker's new queue), a group whose keys
changed is ended by a marker pushed onto a list of its own that its BLPOP also waits
on (no token is taken; ``CLIENT UNBLOCK`` would need the ``@admin`` ACL category).

At most GROUPS groups are waited on: a worker has at most GROUPS (32) more
connections, and queues past them (beyond 16,000 on a single Redis, beyond 32 slots
on Cluster; the last in priority order) are found by the claim after each wait's
timeout, as jobs of Ruby producers are.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from redis.crc import key_slot

from pyresque.protocol.connection import REDIS_DOWN
from pyresque.protocol.supervision import FailureLog

log = logging.getLogger("pyresque.worker")

#: Keys per BLPOP: ~0.1 to 0.4 ms of Redis time each, served (docs/scaling.md).
GROUP = 500
#: Groups waited on at most, each a thread and, while it waits, a connection.
GROUPS = 32
#: A BLPOP's shortest timeout: Redis reads one under a millisecond as 0, "forever".
SHORTEST = 0.01
#: How long an unread end marker lives (its thread ended meanwhile).
MARK_MS = 60_000

#: What a group's BLPOP hands back: its reply, None (timeout) or the error.
_Reply = Sequence[bytes] | None | Exception
#: A Redis error, or no Cluster node reachable (not a bug, nor a signal's ``Wake``).
_REDIS_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.RedisError, *REDIS_DOWN)


def grouped(keys: list[str], clustered: bool) -> list[list[str]]:
    """``keys`` in groups one BLPOP may wait on: by slot on Cluster (in the order of
    each slot's first key), then in runs of at most GROUP; the first GROUPS of them."""
    slots: dict[int, list[str]] = {}
    for key in keys:
        slots.setdefault(key_slot(key.encode()) if clustered else 0, []).append(key)
    runs = [run[i : i + GROUP] for run in slots.values() for i in range(0, len(run), GROUP)]
    return runs[:GROUPS]


def _near(key: str, name: str, prefix: str, clustered: bool) -> str:
    """A key named ``name`` under ``prefix``, on Cluster in ``key``'s slot (its hash tag)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if clustered and start >= 0 and end > start + 1:
        return f"{key[start : end + 1]}:{name}"
    return f"{prefix}{name}"


@dataclass
class _Group:
    """One group's keys, and the list its BLPOP also waits on, to be ended early."""

    keys: list[str]
    end: str
    ended: bool = False
    blocked: bool = False  # its BLPOP is sent (or about to be)
    args: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.args = [*self.keys, self.end]


class WakeWait:
    """A worker's waits on wake-up lists (see the module)."""

    def __init__(self, client: redis.Redis, prefix: str, clustered: bool) -> None:
        self._client = client  # pooled: each group's BLPOP takes a connection of its own
        self._prefix = prefix
        self._clustered = clustered
        self._lock = threading.Lock()
        self._served = threading.Condition(self._lock)  # a reply for the waits
        self._armed = threading.Condition(self._lock)  # a wait began, or the groups changed
        self._waiting = 0  # waits on now
        self._replies: deque[_Reply] = deque()  # never more than waits on
        self._until = 0.0  # monotonic end of the longest wait on now
        self._keys: list[str] = []
        self._groups: list[list[str]] = []
        self._threads: list[_Group] = []  # each thread's group now
        self._closed = False
        self._failures = FailureLog(log, "waiting for wake-up tokens")

    def wait(self, client: redis.Redis, keys: list[str], timeout: float) -> Sequence[bytes] | None:
        """BLPOP ``keys`` (of any slots, any number) for up to ``timeout`` seconds: the
        first reply, or None. One group: on ``client``, in this thread."""
        timeout = max(timeout, SHORTEST)
        groups = self._grouping(keys)
        with self._lock:
            ended = self._regroup(groups if len(groups) > 1 else [])
        self._end(ended)
        if len(groups) == 1:
            return client.blpop(groups[0], timeout=timeout)  # type: ignore[return-value]
        extra: list[_Reply] = []
        try:
            with self._lock:
                deadline = time.monotonic() + timeout
                self._waiting += 1
                self._until = max(self._until, deadline)
                self._armed.notify_all()
                try:
                    while not self._replies and (left := deadline - time.monotonic()) > 0:
                        self._served.wait(left)  # a signal ends it (main thread): Wake
                    reply = self._replies.popleft() if self._replies else None
                finally:
                    self._waiting -= 1
                    while len(self._replies) > self._waiting:  # handed to us as we left
                        extra.append(self._replies.pop())
        finally:
            for other in extra:
                self._give_back(other)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        """End the groups' threads (the worker stops)."""
        with self._lock:
            self._closed = True
            for group in self._threads:
                group.ended = True
            blocked = [g for g in self._threads if g.blocked]
            self._threads = []
            self._armed.notify_all()
        self._end(blocked)

    def _grouping(self, keys: list[str]) -> list[list[str]]:
        if keys is not self._keys and keys != self._keys:
            groups = grouped(keys, self._clustered)
            with self._lock:
                self._keys, self._groups = keys, groups
        return self._groups

    def _regroup(self, groups: list[list[str]]) -> list[_Group]:
        """Give each group a thread (under the lock): a thread whose keys changed ends,
        and one starts for the new keys. Returns the groups whose BLPOP is to be ended."""
        if self._closed:
            raise RuntimeError("the worker's waits are closed")
        ended = []
        for index, keys in enumerate(groups):
            if index < len(self._threads) and self._threads[index].keys == keys:
                continue
            if index < len(self._threads):
                ended.append(self._threads[index])
                self._threads[index].ended = True
            name = f"pyresque:waiter:{os.urandom(8).hex()}"
            group = _Group(keys, _near(keys[0], name, self._prefix, self._clustered))
            if index < len(self._threads):
                self._threads[index] = group
            else:
                self._threads.append(group)
            thread = threading.Thread(target=self._run, args=(group,), daemon=True)
            thread.name = f"pyresque-wait-{index}"
            thread.start()
        for group in self._threads[len(groups) :]:
            group.ended = True
            ended.append(group)
        del self._threads[len(groups) :]
        if ended:
            self._armed.notify_all()
        return [g for g in ended if g.blocked]

    def _end(self, groups: list[_Group]) -> None:
        """End the BLPOPs of ``groups`` (their threads then end): a marker on their lists."""
        for group in groups:
            try:
                with self._client.pipeline(transaction=False) as pipe:
                    pipe.rpush(group.end, "1")
                    pipe.pexpire(group.end, MARK_MS)
                    pipe.execute()
            except _REDIS_ERRORS as exc:  # not a signal's Wake
                log.debug("could not end a wait early (it ends at its timeout): %s", exc)

    def _run(self, group: _Group) -> None:
        """A group's thread: BLPOP while a wait is on and not served, until ended."""
        while True:
            with self._lock:
                while not group.ended and not self._wanted():
                    self._armed.wait()
                if group.ended:
                    return
                left = self._until - time.monotonic()
                group.blocked = True
            reply: _Reply
            try:
                reply = self._client.blpop(group.args, timeout=left)  # type: ignore[assignment]
            except Exception as exc:  # handed to a wait, else the next wait sends again
                reply = exc
            with self._lock:
                group.blocked = False
            if isinstance(reply, (list, tuple)) and reply[0] == group.end.encode():
                continue  # ended (or an older marker): look again
            try:
                self._hand(reply)
            except Exception as exc:  # a bug: logged, and the group goes on waiting
                self._failures.report(exc)

    def _wanted(self) -> bool:
        """Whether a wait is on that no reply serves yet, with time left (under the lock)."""
        return self._waiting > len(self._replies) and self._until - time.monotonic() > SHORTEST

    def _hand(self, reply: _Reply) -> None:
        """Hand ``reply`` to a wait on now; a token nobody waits for goes back."""
        if reply is None:
            return
        with self._lock:
            if self._waiting > len(self._replies):
                self._replies.append(reply)
                self._served.notify()
                return
        self._give_back(reply)

    def _give_back(self, reply: _Reply) -> None:
        """Put back a wake-up token taken after its wait ended: another idle worker's.
        An error nobody waited for is dropped (the next wait sends again), but a bug."""
        if isinstance(reply, Exception):
            if not isinstance(reply, _REDIS_ERRORS):
                self._failures.report(reply)  # (REDIS_DOWN: on Cluster, no node reachable)
            return
        if reply is None:
            return
        try:
            self._client.rpush(reply[0], reply[1])
        except redis.exceptions.RedisError as exc:
            log.warning("a wake-up token was not put back (%s): its job waits for a claim", exc)
