"""A lander's busy claim (landing.py): the commands that move the next job onto a
landing list, sent alone or at the end of a plain finish's pipeline, and their reply.

A worker of one queue moves its head with ``LMOVE``. A worker of several queues or
globs runs land_claim.lua, which moves the head of the first non-empty queue, in
priority order, onto that queue's landing list (protocol/landings.py); as fetch.py's
claim, a call tries the first CHUNK queues, and when they are all empty the next
calls try the following ones, four times as many each time, up to CHUNK_MAX (fewer
when their names pass CHUNK_BYTES), only those ``EXISTS`` found a job in. While
the jobs come from the first queue, a plain ``LMOVE`` of it comes first (the script
only when it found nothing): such a worker costs what a worker of one queue does. Before a
call that may move a job of a queue onto a list not yet named in the worker's
registry, the script adds its queues to it first (once per queue and worker; a
processor of a worker of several names its own lists so); the lists of queues no
longer served (a glob's) leave it by an ``SREM`` in a later claim's pipeline.

A queue of another type (the user's key) is skipped, never changed: land_claim.lua
names it in its reply, and a worker of one queue sees its move fail (``moved``); both
are said in a log line (foreign_queues.py).

A key of the worker's own that a claim uses may hold another type (written by hand, or
hostile): every claim would fail on it, and the worker take no job until someone
deleted it. ``past_foreign`` deletes such a key, with a log line, and claims again;
only a key that can hold no job of ours: a landing list that is not a list, a
registry that is not a set (it names queues, it never holds a job). The registry's
queues are named again before the next move (recovery must find every list).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis

from pyresque.protocol import foreign_queues, scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import raw, text, wrong_type
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import (
    landing_key,
    needs_registry,
    processor_key,
    processor_member,
    registry,
)
from pyresque.protocol.packed import Command
from pyresque.protocol.scripts import ScriptCall
from pyresque.worker.fetch import CHUNK, CHUNK_MAX, Fetcher, chunk_end

log = logging.getLogger("pyresque.worker")
T = TypeVar("T")

#: A landed job: its queue and payload; None when the queues were empty.
Landed = tuple[str, bytes] | None


def past_foreign(
    claims: OneQueue | SeveralQueues,
    client: redis.Redis,
    call: Callable[[], T],
    again: Callable[[], T] | None = None,
) -> T:
    """``call`` (a claim, a wait); when it failed on a key of the worker's own that holds
    another type, that key is deleted and ``again`` (or ``call``) runs once more."""
    try:
        return call()
    except redis.exceptions.ResponseError as exc:
        if not wrong_type(exc) or not _cleared(claims, client):
            raise  # not a key of ours (a queue of another type is skipped before: ``moved``)
    return (again or call)()


def _cleared(claims: OneQueue | SeveralQueues, client: redis.Redis) -> bool:
    """Delete the keys of ``claims.own()`` that hold another type (foreign_clear.lua),
    each with a log line; whether any was."""
    own = claims.own()
    deleted = scripts.clear_foreign(client, own)
    for key, found in deleted:
        log.error(
            "deleted %s: it held a %s where this worker keeps a %s, so every claim failed "
            "on it (it could hold no job of ours); claiming again",
            key,
            found,
            own[key],
        )
    if deleted:
        claims.forget()
    return bool(deleted)


def _wrong_type(reply: Any) -> bool:
    return isinstance(reply, redis.exceptions.ResponseError) and wrong_type(reply)


def _checked(reply: Any) -> Any:
    if isinstance(reply, Exception):  # a queue's key holds another type
        raise reply
    return reply


class NoLanding:
    """The lander of a processor whose worker cannot land jobs: nothing to adopt."""

    fast = False

    def holds(self, claim: Claim) -> bool:
        return False

    def landed_on(self, claim: Claim) -> str:
        return ""

    def found_empty(self) -> bool:
        return False

    def adoption(self) -> ScriptCall | None:
        return None

    def drop(self, claim: Claim) -> None:
        pass

    def settle(self) -> None:
        pass

    def close(self) -> None:
        pass


class OneQueue:
    """The claim of a worker of one queue: ``LMOVE`` of its head onto the landing list;
    with ``index``, onto that processor's list (a worker of several processors), which
    ``naming`` (the registry, its member) names before the first move."""

    def __init__(self, keys: Keys, worker_id: str, queue: str, index: int | None = None) -> None:
        self.queue = queue
        self.naming: tuple[str, bytes] | None = None
        if index is None:
            self._list = landing_key(keys, worker_id, queue)
        else:
            self._list = processor_key(keys, worker_id, index, queue)
            self.naming = (registry(keys, worker_id), processor_member(index, queue))
        self._named_at: int | None = None  # ``lapses`` when the registry named it
        self._move = ("LMOVE", keys.queue(queue), self._list, "LEFT", "RIGHT")
        self.foreign = False  # the last move found the queue's key of another type

    def name(self, lapses: int, send: Callable[[list[Command]], list[Any]]) -> None:
        """Name a processor's list in the registry, in a call of its own (a registry of
        another type fails it before any move), at the first move and again after each
        ``lapses`` change (a reap gave the registry a TTL, a Redis restart lost it)."""
        if self.naming is not None and lapses != self._named_at:
            key, member = self.naming
            _checked(send([("SADD", key, member), ("PERSIST", key)])[0])
            self._named_at = lapses

    def own(self) -> dict[str, str]:
        """The worker's keys a claim uses (past_foreign), each with the type it holds."""
        own = {self._list: "list"}
        if self.naming is not None:
            own[self.naming[0]] = "set"
        return own

    def forget(self) -> None:
        """A key of ``own`` was deleted: name the list again before the next move."""
        self._named_at = None

    def lists(self, client: redis.Redis) -> list[tuple[str, str, list[bytes]]]:
        """A processor's list and what it holds, as ``read_lists`` reads lists; none for
        a worker's one list (its give-back reads it)."""
        if self.naming is None:
            return []
        return [(self._list, self.queue, cast("list[bytes]", client.lrange(self._list, 0, -1)))]

    def commands(self) -> list[Command]:
        return [self._move]

    def wait(self, timeout: float) -> Command:
        """The idle wait's ``BLMOVE``, ``timeout`` seconds at most."""
        return ("BLMOVE", *self._move[1:], f"{timeout:.3f}")

    def landing(self, queue: str) -> str:
        """The landing list (of ``queue``, the one queue)."""
        return self._list

    def landed(self, replies: list[Any], send: Callable[[list[Command]], list[Any]]) -> Landed:
        """The job the commands' ``replies`` landed."""
        reply = self.moved(replies[-1], send)
        return None if reply is None else (self.queue, raw(reply))

    def moved(self, reply: Any, send: Callable[[list[Command]], list[Any]]) -> Any:
        """A move's (or wait's) reply: the job, or None; None too when the queue's key
        holds another type, which is skipped (``foreign``, foreign_queues.py), a TYPE
        sent only then. A landing list of another type raises (``past_foreign``)."""
        self.foreign = False
        if _wrong_type(reply):
            key = self._move[1]
            found = text(_checked(send([("TYPE", key)])[0]))
            if found not in ("list", "none"):
                foreign_queues.skipped(self.queue, key, found)
                self.foreign = True
                return None
        return _checked(reply)


class SeveralQueues:
    """The claim of a worker of several queues or globs: land_claim.lua over the queues
    ``fetcher`` resolves, in priority order."""

    def __init__(
        self,
        keys: Keys,
        worker_id: str,
        fetcher: Fetcher,
        lapses: Callable[[], int],
        index: int | None = None,
    ) -> None:
        self._index = index  # a processor's, whose lists are its own (protocol/landings.py)
        self._lapses = lapses  # Stop.lapses + the heartbeat's registrations
        self._named_at = lapses()  # Stop.lapses when _named was last right
        self._keys = keys
        self._worker_id = worker_id
        self._fetcher = fetcher
        self._registry = registry(keys, worker_id)
        self._named: set[str] = set()  # queues the registry holds (SADD replied)
        self._lists: dict[str, str] = {}  # queue -> its landing list
        self._sha = scripts.script("land_claim").sha
        self._sent: tuple[list[str], bool] = ([], False)  # the last call's queues, woken
        self._first = False  # the last call was an LMOVE of the first queue alone
        self._hot: str | None = None  # the first queue, while the last job came from it
        self._served: list[str] | None = None  # the resolved queues ``_unnamed`` last saw

    def name(self, lapses: int, send: Callable[[list[Command]], list[Any]]) -> None:
        """Nothing: land_claim.lua names the lists in the registry itself."""

    def lists(self, client: redis.Redis) -> list[tuple[str, str, list[bytes]]]:
        """A processor's lists and what they hold, as ``read_lists`` reads lists, in one
        round trip; none for a worker's own (its give-back reads them)."""
        if self._index is None or not self._lists:
            return []
        pipe = client.pipeline(transaction=False)
        for key in self._lists.values():
            pipe.lrange(key, 0, -1)
        found = zip(self._lists.items(), pipe.execute(), strict=True)
        return [(key, queue, cast("list[bytes]", items)) for (queue, key), items in found]

    def own(self) -> dict[str, str]:
        """The worker's keys the last call used (past_foreign), each with its type."""
        return {self.landing(q): "list" for q in self._sent[0]} | {self._registry: "set"}

    def forget(self) -> None:
        """A key of ``own`` was deleted (the registry, maybe): name the queues again."""
        self._named.clear()
        self._hot = None

    def commands(self) -> list[Command]:
        """The first call's commands (none when no queue is served). While jobs come
        from the first queue, an ``LMOVE`` of it alone (a script call costs the server
        ~5 us more); a woken claim always runs the script (it passes the wake-up on)."""
        if (lapses := self._lapses()) != self._named_at:
            # The lease lapsed, or a beat registered the worker again: it may have been
            # reaped meanwhile, and its registry given a TTL (reap.lua), or Redis lost its
            # data (a restart). The script names the queues again, with no TTL.
            self._named.clear()
            self._hot = None
            self._named_at = lapses
        woken = self._fetcher.took_wake()
        queues = self._fetcher.resolved
        unnamed = self._unnamed(queues)
        first = queues[0] if queues else None
        self._first = not woken and first is not None and first == self._hot
        if first is not None and self._first:
            self._sent = ([first], False)
            move = ("LMOVE", self._keys.queue(first), self.landing(first), "LEFT", "RIGHT")
            return [*unnamed, move]
        return [*unnamed, *self._call(0, chunk_end(queues, 0, CHUNK), woken)]

    def _unnamed(self, queues: list[str]) -> list[Command]:
        """The ``SREM`` from the registry of the lists of queues no longer served (removed,
        forgotten by the idle-queue sweep, no longer matched by a glob), once per change
        of the resolved ``queues``. Those lists are empty: a claim runs with no landed
        job (after the give-back of any orphan), and in a finish's pipeline the ``SREM``
        follows the finished job's ``LREM``. A queue served again is named again before
        its next move, as a new one is."""
        if queues is self._served:
            return []
        self._served = queues
        gone = self._named.difference(queues)
        if not gone:
            return []
        self._named -= gone
        for queue in gone:
            self._lists.pop(queue, None)
        if self._index is not None:
            members: list[str | bytes] = [processor_member(self._index, q) for q in sorted(gone)]
        else:
            members = [q for q in sorted(gone) if needs_registry(self._worker_id, q)]
        return [("SREM", self._registry, *members)] if members else []

    def landed(self, replies: list[Any], send: Callable[[list[Command]], list[Any]]) -> Landed:
        """The job the first call's ``replies`` landed, or the following calls', each
        sent with ``send`` while the queues tried were empty."""
        start, size = 0, CHUNK
        resolved = self._fetcher.resolved
        if self._first:
            # A WRONGTYPE: the first queue holds another type now (or its landing list
            # does): the script over the first queues skips it and names it, or fails.
            if not _wrong_type(replies[-1]):
                if (job := _checked(replies[-1])) is not None:
                    return self._sent[0][0], raw(job)
                start = 1  # the first queue was empty: the script for the others
            commands = self._call(start, chunk_end(resolved, start, CHUNK), False)
            replies = send(commands) if commands else []
        self._hot = None
        while self._sent[0]:
            queues, woken = self._sent
            reply = replies[-1]
            if isinstance(reply, redis.exceptions.NoScriptError):  # the cache was flushed
                # EVAL on this connection, never retried: a lost reply raises, and the
                # lander gives back what it landed (a retry would land a second job).
                keys, args = self._script(queues, woken)
                eval_ = ("EVAL", scripts.script("land_claim").script, len(keys), *keys, *args)
                reply = send([eval_])[-1]
            found = foreign_queues.named(_checked(reply), self._keys.queue)
            self._named.update(queues)
            if found:
                queue = text(found[0])
                self._hot = queue if start == 0 and queue == queues[0] else None
                return queue, raw(found[1])
            start, size = start + len(queues), min(size * 4, CHUNK_MAX)
            end = chunk_end(resolved, start, size)
            if not woken and start < end:  # only queues that hold a job (fetch.py)
                start, end = self._fetcher.queued_from(start, end)
            commands = self._call(start, end, woken)
            if commands:
                replies = send(commands)
        return None

    def _call(self, start: int, end: int, woken: bool) -> list[Command]:
        queues = self._fetcher.resolved[start:end]
        self._sent = (queues, woken)
        if not queues:
            return []
        keys, args = self._script(queues, woken)
        return [("EVALSHA", self._sha, len(keys), *keys, *args)]

    def _script(self, queues: list[str], woken: bool) -> tuple[list[str], list[str | bytes]]:
        """land_claim.lua's KEYS and ARGV; the lists are named in the registry until a
        call that did it was answered."""
        index, worker_id, named = self._index, self._worker_id, self._named
        own = index is not None  # a processor's lists: each is named
        name = any(q not in named and (own or needs_registry(worker_id, q)) for q in queues)
        keys = [self._keys.queue(q) for q in queues] + [self.landing(q) for q in queues]
        if woken:
            keys += [self._keys.wake(q) for q in queues]
        args: list[str | bytes] = ["1" if woken else "", "1" if name else "", *queues]
        if name:
            keys.append(self._registry)
            args += queues if index is None else [processor_member(index, q) for q in queues]
        return keys, args

    def landing(self, queue: str) -> str:
        """The landing list of ``queue``."""
        key = self._lists.get(queue)
        if key is None:
            if self._index is None:
                key = landing_key(self._keys, self._worker_id, queue)
            else:
                key = processor_key(self._keys, self._worker_id, self._index, queue)
            self._lists[queue] = key
        return key
