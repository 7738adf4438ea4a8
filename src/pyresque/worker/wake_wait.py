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

Signals: in fork and inline modes the wait runs in the main thread, where a signal's
handler raises ``Wake`` to end it (signals.py), at whatever point it reached: CPython
runs handlers as a function starts, at a backward jump, or as a C call returns. So
the main thread's side holds wherever one lands:

- it blocks on a lock of its wait's own (``_Slot.ready``) that the group thread
  handing it a reply releases, never in ``Condition.wait`` (cut between releasing its
  lock and taking it back, it leaves it released: ``release unlocked lock``);
- the waits on are one list, ``_slots``, changed by single calls under ``with`` (its
  lock is released whatever lands); a wait leaves it in a ``finally`` run twice (the
  second completes when a ``Wake`` cut the first: one comes per wait, ``_wake_idle``),
  and what was handed to a wait a ``Wake`` ended goes back. A wait left on the list
  anyway (more exceptions than that) is dropped at its end;
- it starts no thread (``Thread.start`` waits on a ``Condition`` too, and cut, it
  lets the new thread die in its bootstrap) and sends no Redis command (a call cut in
  redis-py's checkout keeps its connection out of the pool for good: after 100, the
  pool is spent): threads that ``_spawn`` starts push the markers and the tokens put
  back, and start the groups' threads. A group with no running thread (never started,
  or died) gets one at the next wait.

One group's BLPOP, in the caller's thread, is redis-py's call: a token it read as the
``Wake`` lands is lost (the claim that follows the wait finds its job all the same).
"""

from __future__ import annotations

import _thread
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.crc import key_slot

from pyresque.protocol import scripts
from pyresque.protocol.connection import REDIS_DOWN, wrong_type
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
#: A group's thread asked for and not running after this long is asked for again.
START_GRACE = 1.0

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


def _spawn(name: str, target: Callable[..., None], *args: Any) -> None:
    """``target(*args)`` in a new daemon thread named ``name``, started from a thread
    of its own: one C call here, which either starts it or not (see the module)."""
    _thread.start_new_thread(_start, (name, target, args))


def _start(name: str, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        threading.Thread(target=_logged, args=(target, args), name=name, daemon=True).start()
    except RuntimeError as exc:  # no thread to be had: the next wait asks again
        log.error("could not start a thread of the idle wait (%s): the next wait retries", exc)


def _logged(target: Callable[..., None], args: tuple[Any, ...]) -> None:
    """A thread of the wait's: an error is a bug, logged (not only printed); a group
    whose thread ended gets a new one at the next wait."""
    try:
        target(*args)
    except Exception:
        log.exception("a thread of the idle wait failed: its group gets a new one at the next wait")


def _blpop(client: redis.Redis, keys: list[str], timeout: float) -> Sequence[bytes] | None:
    """BLPOP ``keys``. One of them that holds another type (written by hand, or hostile)
    fails every BLPOP on them: it is deleted with a log line (foreign_clear.lua, as a
    claim's own keys are: landing_claims.py), and the BLPOP sent once more (whoever
    deleted it: another processor's wait may have, just now). They are wake-up lists,
    queues-changed and a group's end marker: they hold tokens, never a job (a claim
    finds the jobs on their queues), so deleting one loses wake-ups only."""
    try:
        return client.blpop(keys, timeout=timeout)  # type: ignore[return-value]
    except redis.exceptions.ResponseError as exc:
        if not wrong_type(exc):
            raise
    for key, found in scripts.clear_foreign(client, dict.fromkeys(keys, "list")):
        log.error(
            "deleted %s: it held a %s where pyresque keeps a list of wake-up tokens, so "
            "every idle wait on it failed (it held no job: claims read the queues); "
            "waiting again",
            key,
            found,
        )
    return client.blpop(keys, timeout=timeout)  # type: ignore[return-value]


def _marker(reply: _Reply, group: _Group) -> bool:
    return isinstance(reply, (list, tuple)) and reply[0] == group.end.encode()


class _Slot:
    """One wait on now: its end, and the reply a group's thread hands it."""

    __slots__ = ("error", "ready", "reply", "until")

    def __init__(self, until: float) -> None:
        self.until = until
        self.ready = threading.Lock()  # released once a reply is handed
        self.ready.acquire()
        self.reply: Sequence[bytes] | None = None
        self.error: Exception | None = None


class _Group:
    """One group's keys, and the list its BLPOP also waits on, to be ended early."""

    def __init__(self, keys: list[str], end: str) -> None:
        self.keys = keys
        self.end = end
        self.args = [*keys, end]
        self.blocked = False  # its BLPOP is sent (or about to be)
        self.life = threading.Lock()  # held by its thread while it runs
        self.asked: float | None = None  # when its thread was last asked for (monotonic)


class WakeWait:
    """A worker's waits on wake-up lists (see the module)."""

    def __init__(self, client: redis.Redis, prefix: str, clustered: bool) -> None:
        self._client = client  # pooled: each group's BLPOP takes a connection of its own
        self._prefix = prefix
        self._clustered = clustered
        self._lock = threading.Lock()
        self._armed = threading.Condition(self._lock)  # a wait began, or the groups changed
        self._slots: list[_Slot] = []  # the waits on, oldest first
        self._plan: tuple[list[str], list[list[str]]] = ([], [])  # keys, their groups
        self._groups: list[_Group] = []  # the groups waited on now
        self._closed = False
        self._failures = FailureLog(log, "waiting for wake-up tokens")

    def wait(self, client: redis.Redis, keys: list[str], timeout: float) -> Sequence[bytes] | None:
        """BLPOP ``keys`` (of any slots, any number) for up to ``timeout`` seconds: the
        first reply, or None. One group: on ``client``, in this thread."""
        timeout = max(timeout, SHORTEST)
        groups = self._grouping(keys)
        self._regroup(groups if len(groups) > 1 else [])
        if len(groups) == 1:
            return _blpop(client, groups[0], timeout)
        slot = _Slot(time.monotonic() + timeout)
        try:
            try:
                with self._lock:
                    self._slots.append(slot)
                    self._armed.notify_all()
                slot.ready.acquire(timeout=timeout)  # a signal ends it (main thread): Wake
            finally:
                try:
                    self._leave(slot)
                finally:
                    self._leave(slot)  # again, if a Wake cut the first short
        except BaseException:
            self._unserved(slot)
            raise
        if slot.error is not None:
            raise slot.error
        return slot.reply

    def close(self) -> None:
        """End the groups' threads (the worker stops)."""
        with self._lock:
            self._closed = True
            blocked = [g for g in self._groups if g.blocked]
            self._groups = []
            self._armed.notify_all()
        self._end(blocked)

    def _grouping(self, keys: list[str]) -> list[list[str]]:
        plan = self._plan
        if keys is not plan[0] and keys != plan[0]:
            plan = (keys, grouped(keys, self._clustered))
            self._plan = plan  # one store: a Wake leaves the old plan or the new
        return plan[1]

    def _regroup(self, groups: list[list[str]]) -> None:
        """Give each group a running thread: a group whose keys changed is replaced
        (its thread ends, its BLPOP by a marker), and a group whose thread is not
        running gets one. Each step leaves a state the next wait completes."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker's waits are closed")
            old = self._groups
            now = [self._kept(old, index, keys) for index, keys in enumerate(groups)]
            self._groups = now
            ended = [g for g in old if g not in now and g.blocked]
            if len(now) != len(old) or ended:
                self._armed.notify_all()
        if ended:
            _spawn("pyresque-wait-end", self._end, ended)
        for index, group in enumerate(now):
            asked = group.asked
            if not group.life.locked() and (
                asked is None or time.monotonic() - asked > START_GRACE
            ):
                _spawn(f"pyresque-wait-{index}", self._run, group)
                group.asked = time.monotonic()  # (after: a Wake between asks again)

    def _kept(self, old: list[_Group], index: int, keys: list[str]) -> _Group:
        if index < len(old) and (old[index].keys is keys or old[index].keys == keys):
            return old[index]
        name = f"pyresque:waiter:{os.urandom(8).hex()}"
        return _Group(keys, _near(keys[0], name, self._prefix, self._clustered))

    def _leave(self, slot: _Slot) -> None:
        """End ``slot``'s wait: no reply is handed to it from here (done again, no harm)."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def _unserved(self, slot: _Slot) -> None:
        """A wait ended by an exception: what was handed to it meanwhile goes back."""
        got = slot.error if slot.error is not None else slot.reply
        if got is not None:
            _spawn("pyresque-wait-back", self._give_back, got)

    def _end(self, groups: list[_Group]) -> None:
        """End the BLPOPs of ``groups`` (their threads then end): a marker on their lists."""
        for group in groups:
            try:
                with self._client.pipeline(transaction=False) as pipe:
                    pipe.rpush(group.end, "1")
                    pipe.pexpire(group.end, MARK_MS)
                    pipe.execute()
            except _REDIS_ERRORS as exc:
                log.debug("could not end a wait early (it ends at its timeout): %s", exc)

    def _run(self, group: _Group) -> None:
        """A group's thread: BLPOP while a wait is on and not served, until ended."""
        if not group.life.acquire(blocking=False):
            return  # asked for twice: its first thread runs
        try:
            self._serve(group)
        finally:
            group.life.release()

    def _serve(self, group: _Group) -> None:
        while True:
            with self._lock:
                while self._current(group) and self._until() - time.monotonic() <= SHORTEST:
                    self._armed.wait()
                if not self._current(group):
                    return
                left = self._until() - time.monotonic()
                group.blocked = True
            reply: _Reply
            try:
                reply = _blpop(self._client, group.args, left)
            except Exception as exc:  # handed to a wait, else the next wait sends again
                reply = exc
            with self._lock:
                group.blocked = False
            if reply is None or _marker(reply, group):
                continue  # timed out, or ended (or an older marker): look again
            try:
                self._hand(reply)
            except Exception as exc:  # a bug: logged, and the group goes on waiting
                self._failures.report(exc)

    def _current(self, group: _Group) -> bool:
        """Whether ``group`` is still waited on (under the lock)."""
        return not self._closed and group in self._groups  # (by identity)

    def _live(self) -> list[_Slot]:
        """The waits on now, dropping those past their end: a wait that exceptions
        left on the list (they cut its ``finally``) is not handed a token (under the lock)."""
        now = time.monotonic()
        if any(s.until <= now for s in self._slots):
            self._slots[:] = [s for s in self._slots if s.until > now]
        return self._slots

    def _until(self) -> float:
        """The end of the longest wait on now, or 0 (under the lock)."""
        return max((s.until for s in self._live()), default=0.0)

    def _hand(self, reply: _Reply) -> None:
        """Hand ``reply`` to the oldest wait on now; a token nobody waits for goes back."""
        with self._lock:
            if self._live():
                slot = self._slots.pop(0)
                if isinstance(reply, Exception):
                    slot.error = reply
                else:
                    slot.reply = reply
                slot.ready.release()
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
