"""Landing: an idle worker's wait that claims the job it waits for, in one command.

A worker that serves one queue waits with ``BLMOVE queue:<q> pyresque:landing:<id>
LEFT RIGHT``: the job that wakes it moves, atomically, onto the worker's landing
list, and the reply carries it, so the job starts one round trip after its push, as
a bare ``BRPOP`` loop's would. Ruby and PHP producers' pushes wake it as well. Each
processor of a worker of several (threads, asyncio, prefork) has lists of its own
(protocol/landings.py: a finish removes its job by value, and a sibling's may be
byte-identical), named in the worker's registry before its first move, and claims
and waits for itself, on its own connection.

Why nothing is lost: the job is always on its queue, on a landing list, or in the
in-flight hash. Recovery of a dead worker, ``reap``, the give-back on exit and of
orphans all read the landing lists too (recovery.py), each one's queue named by the
worker id or by the worker's registry (protocol/landings.py).

Fencing: a job may have landed while the worker's lease had lapsed, and a worker
that took over may have recovered it already. So a landed job runs only if the
lease was held without a lapse from before the ``BLMOVE`` was sent until its reply
was read (``Stop.lapses``: no renewal came after the lease's run deadline had passed,
so the Redis lease never expired in between and no recovery could run), and the
worker is not paused (by a signal or a command, or by Ruby's ``pause-all-workers``
as its last heartbeat read it) or stopping; otherwise it goes back to the head of
its queue.

The landing list is the job's in-flight record. Busy claims land jobs too (``claim``:
one ``LMOVE``, no script; ``pause-all-workers`` is read by the heartbeat, not per
claim, so a worker stops taking jobs within a beat of its setting), the RUNNING
marker shows a job from its list (``LPOS``), and a plain job (it succeeded; no
retry, lock, limit, stored result or workflow) is never adopted: its finish
(``finish``) is one pipeline, ``LREM`` of the job from the landing list (0 removed:
it was recovered from us, the outcome is fenced and not counted), ``SET status XX
GET`` (a tracked job's COMPLETE, its ``started`` as the RUNNING marker read it, or
carried over just after for a job that ended before it was marked; nothing for an
untracked one), and the next claim (``LMOVE``). A SIGKILL at any instant leaves the
job on the queue or the landing list, and the finished one is done the moment its
``LREM`` ran. Resque's ``stat:processed`` counters of those jobs are counted here and
added (``INCRBY``) by the first pipeline a second after the last write, and on exit:
a worker SIGKILLed loses at most its last second of those counts, and a pipeline
whose reply is lost may lose them (never counts them twice). Any other job (a
failure, a retry, a lock, limits...) is adopted (adopt.lua: into the in-flight hash
under its claim token, by the RUNNING marker or before anything else touches it:
``settle``) and finished by its script.

A worker of several queues or globs lands on a list per queue (and processor:
landing_claims.py; a worker's processors share its globs' resolution, queue_list.py);
idle, it waits on the wake lists (``BLMOVE`` takes one source), then claims so. Not
used by a worker with a durability policy (a move the replicas may not have), told
not to block, or on Redis Cluster (worker/sharded.py): those of several processors
claim with the scripts for all free ones (handoff.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import REDIS_DOWN, dedicated, raw
from pyresque.protocol.landings import one_queue
from pyresque.protocol.packed import Command, exchange
from pyresque.protocol.scripts import ScriptCall
from pyresque.worker.fetch import LEASE_EXPIRED, Fetcher, Paused
from pyresque.worker.landing_claims import NoLanding, OneQueue, SeveralQueues, past_foreign
from pyresque.worker.plain import STATS_EVERY, StatusWrite, complete, status_after
from pyresque.worker.signals import Running, Wake

if TYPE_CHECKING:
    from pyresque.worker.host import Host

log = logging.getLogger("pyresque.worker")
T = TypeVar("T")

#: Longest wait of one BLMOVE. A job that lands after ``pause-all-workers`` was set
#: but before a heartbeat read it still runs, so an idle worker honours that key
#: within this plus a beat.
LAND_WAIT = 1.0


class Lander:
    """One processor's blocking claim on its worker's one queue: the ``BLMOVE``, and the
    adoption of what it landed, on a connection of its own."""

    def __init__(
        self, worker: Host, fetcher: Fetcher | None = None, index: int | None = None
    ) -> None:
        self._worker = worker
        keys = worker.resque.keys
        self._client = dedicated(worker.resque.redis)
        self._claims: OneQueue | SeveralQueues
        if fetcher is None:
            self._claims = OneQueue(keys, worker.id, worker.queues.included[0], index)
        else:
            self._claims = SeveralQueues(keys, worker.id, fetcher, self._lapsed, index)
        self.blocks = fetcher is None  # idle, it waits with BLMOVE (else on the wake lists)
        self._inflight = keys.inflight(worker.id)
        self._lapses = 0  # Stop.lapses when the BLMOVE was sent
        self._adopting: list[Any] | None = None  # adopt.lua's ARGV, until it ran
        self._unsure = False  # a wait ended without its reply: a job may be on the list
        self._counted = False  # this lander counts in the worker's landing (Worker.landing)
        # Busy claims land too and plain jobs finish without a script: one processor, or
        # a list of each processor's own (``index``).
        self.fast = worker.options.mode in ("fork", "inline") or index is not None
        self._stats = (keys.stat("processed"), keys.stat("processed", worker.id))
        self._unwritten = 0  # plain finishes not yet in self._stats
        self._written_at = time.monotonic()
        self._empty = False  # the last look at the queue (LMOVE, BLMOVE) found nothing

    @classmethod
    def of(cls, worker: Host, fetcher: Fetcher | None = None, index: int = 0) -> Lander | NoLanding:
        """A lander for processor ``index`` of ``worker`` (its claims resolve the queues
        of a worker of several with ``fetcher``), or NoLanding when it cannot land jobs."""
        queues, keys = worker.queues, worker.resque.keys
        # Not on Cluster: the landing list is not in the queue's slot (worker/sharded.py).
        if worker.resque.durability or not worker.options.blocking or keys.clustered:
            return NoLanding()
        own = None if worker.options.mode in ("fork", "inline") else index  # lists of its own
        if not queues.dynamic and queues.included == [one_queue(worker.id)]:
            return cls(worker, index=own)
        if fetcher is None:
            return NoLanding()
        return cls(worker, fetcher, own)

    def wait(self, seconds: float, token: str, waiter: Running) -> Claim | None:
        """Wait for a job, claiming it as it comes under ``token``; ``waiter`` (the
        processor) is idle meanwhile: in the main thread a signal ends the wait (Wake)."""
        worker = self._worker
        worker.hold(token)
        claim = None
        try:
            try:
                waiter.idle = threading.current_thread() is threading.main_thread()
                landed = None if worker.shutting_down else self.block(seconds)
            except Wake:
                self.interrupted()  # a job that landed anyway is given back
                return None
            finally:
                waiter.idle = False
            queue = cast(OneQueue, self._claims).queue
            claim = None if landed is None else self.take(queue, landed, token)
            return claim
        finally:
            if claim is None:
                worker.release(token)

    def block(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` (at most LAND_WAIT) seconds for a job to land; its
        payload, or None. Every job that landed is either returned or found by the next
        ``block``, which gives back what an interrupted wait left (a signal, an outage).
        A connection that failed (a Redis restart left it stale) is tried once more."""
        claims = self._claims
        assert isinstance(claims, OneQueue)
        wait = claims.wait(min(timeout, LAND_WAIT))

        def send() -> Any:  # the counts due go with it: an idle worker sends nothing else
            *_, reply = self._send([*self._stats_due(), wait])
            return claims.moved(reply, self._send)

        reply = past_foreign(claims, self._client, lambda: self._landing_call(send))
        if reply is None:
            self._empty = True
            self._count(False)
            if claims.foreign:  # its key holds another type: the wait's time, not at once again
                self._worker.sleep(min(timeout, LAND_WAIT))
            return None
        return raw(reply)

    def found_empty(self) -> bool:
        """Whether the last look at the queue found nothing (cleared as read): the
        processor then waits at once, without a busy claim that would look again, so a
        job pushed meanwhile waits one round trip less (the wait takes it as it comes)."""
        empty, self._empty = self._empty, False
        return empty

    def interrupted(self) -> None:
        """A wait ended without its job handed on: the next ``block`` gives back what
        may have landed."""
        self._unsure = True
        self._count(False)

    def take(self, queue: str, payload: bytes, token: str) -> Claim | None:
        """The claim of a job ``block`` returned, its adoption under ``token`` sent; or
        None when it may not run here (see the module's fencing), after it went back."""
        worker = self._worker
        runs = worker.stop.lapses == self._lapses and worker.lease_ok()
        held = worker.paused or worker.heartbeat.paused_all or worker.shutting_down
        if not runs or held:
            self._give_back(queue, payload)
            return None
        self._adopting = [token, queue, payload]
        return Claim(token, queue, payload)

    def holds(self, claim: Claim) -> bool:
        """Whether ``claim`` is a landed job not adopted: ``finish`` may end it."""
        return self.fast and self._adopting is not None and self._adopting[0] == claim.token

    def landed_on(self, claim: Claim) -> str:
        """The landing list ``claim`` runs from (``holds``), or ""."""
        return self._claims.landing(claim.queue) if self.holds(claim) else ""

    def drop(self, claim: Claim) -> None:
        """The processor gives up ``claim`` (Redis went down on its way): if it is a
        landed job not adopted, it is an orphan that the next claim gives back."""
        if self._adopting is not None and self._adopting[0] == claim.token:
            self._adopting = None
            self.interrupted()

    def claim(self, token: str) -> list[Claim] | Paused:
        """A busy worker's claim, in one round trip (landing_claims.py): the head of
        the first non-empty queue moved onto its landing list. [], one claim, or why
        none. A connection that failed is tried once more, after a give-back of what its
        lost reply may have landed."""

        def send() -> list[Any]:
            return self._send([*self._stats_due(), *self._claims.commands()])

        landed = lambda: self._landed(self._landing_call(send), token)  # noqa: E731
        return past_foreign(self._claims, self._client, landed)

    def _landing_call(self, send: Callable[[], T]) -> T:
        """``send`` a call that may land a job. A connection that failed (a Redis restart
        left it stale) is tried once more, after a give-back of what a lost reply, or an
        interrupted wait, may have landed."""
        self._empty = False
        for attempt in range(2):
            if self._unsure:
                self._worker.give_back_orphans()  # raises while Redis is down: tried again
                self._give_back_own()
                self._unsure = False
                # A call failed: Redis may have lost its data (a restart) and the registry
                # with it before any beat saw the worker unregistered. Named again before
                # this move, a job landing before that beat is on a list recovery reads.
                self._claims.forget()
            self._count(True)
            self._lapses = self._worker.stop.lapses
            try:
                self._claims.name(self._lapsed(), self._send)
                return send()
            except REDIS_DOWN:
                self.interrupted()
                if attempt:
                    raise
            except BaseException:
                self.interrupted()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def finish(
        self, claim: Claim, status: StatusWrite | None, next_token: str | None
    ) -> tuple[bool, list[Claim] | Paused]:
        """End a plain landed job (see the module): whether it was still ours, and the
        job claimed for ``next_token``. ``status``: its status key and result (JSON).
        A connection that failed is tried once more without the claim (``LREM`` may
        be sent twice, nothing else is). Raises while Redis is down: the job then
        stays counted as landed for the processor's retry; anything a lost claim
        landed is an orphan that the next ``claim`` gives back."""
        self._empty = False
        for attempt in range(2):
            take = next_token is not None and not self._unsure
            stats = self._stats_due()
            landing = self._claims.landing(claim.queue)
            commands: list[tuple[Any, ...]] = [*stats, ("LREM", landing, -1, claim.raw)]
            if status is not None:
                commands.append(complete(status))
            claiming = self._claims.commands() if take else []
            if take:
                self._lapses = self._worker.stop.lapses
            try:
                if take:
                    self._claims.name(self._lapsed(), self._send)
                replies = self._send([*commands, *claiming])
            except REDIS_DOWN:
                self._unsure = True
                if attempt:
                    raise
                continue
            except BaseException:
                self._unsure = True
                raise
            done, claimed = replies[len(stats) : len(commands)], replies[len(commands) :]
            return self._finished(claim, status, done, claimed, next_token if take else None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _finished(
        self,
        claim: Claim,
        status: StatusWrite | None,
        replies: list[Any],
        claimed: list[Any],
        next_token: str | None,
    ) -> tuple[bool, list[Claim] | Paused]:
        """``finish``'s replies read: the finish's, and the claim's (``claimed``)."""
        if isinstance(replies[0], Exception):  # the landing list's key holds another type
            raise replies[0]
        ours = replies[0] == 1
        if status is not None and isinstance(replies[1], bytes):  # it is tracked
            status_after(self._client, status, replies[1], ours)
        self._adopting = None
        self._unwritten += 1 if ours else 0
        if next_token is None:
            self._count(False)
            return ours, []
        landed = lambda: self._landed(claimed, next_token)  # noqa: E731
        return ours, past_foreign(
            self._claims, self._client, landed, lambda: self.claim(next_token)
        )

    def _stats_due(self) -> list[tuple[Any, ...]]:
        """The ``INCRBY`` of the counts not written yet, once a second (taken: a reply
        that is lost loses them). A counter someone overwrote replies an error, ignored."""
        now = time.monotonic()
        if not self._unwritten or now - self._written_at < STATS_EVERY:
            return []
        count, self._unwritten, self._written_at = self._unwritten, 0, now
        return [("INCRBY", key, count) for key in self._stats]

    def _landed(self, replies: list[Any], token: str) -> list[Claim] | Paused:
        """The claim of a pipelined claim's ``replies`` (the last ones of the pipeline):
        the following calls of a worker of many queues are sent from here."""
        try:
            landed = self._claims.landed(replies, self._send)
        except BaseException:  # a queue's key holds another type, or a call failed
            self.interrupted()
            raise
        if landed is None:
            self._empty = True
            self._count(False)
            return []
        claim = self.take(*landed, token)
        if claim is None:  # given back: a lease that lapsed, a pause, a shutdown
            return LEASE_EXPIRED
        return [claim]

    def _lapsed(self) -> int:
        """Changes with each lapse of the lease and registration of the worker."""
        return self._worker.stop.lapses + self._worker.heartbeat.registrations

    def _send(self, commands: list[Command]) -> list[Any]:
        return exchange(self._connection(), commands)

    def _give_back_own(self) -> None:
        """A processor's own lists, while it holds no landed job, hold only orphans."""
        lists = self._claims.lists(self._client)
        if any(items for _, _, items in lists):
            self._worker.recovery.give_back_landing(self._worker.id, False, True, lists=lists)

    def _give_back(self, queue: str, payload: bytes) -> None:
        worker = self._worker
        try:
            key = self._claims.landing(queue)
            worker.recovery.give_back_landed(worker.id, queue, payload, False, True, key=key)
        except REDIS_DOWN:
            self._unsure = True
            raise
        finally:
            self._count(False)

    def adoption(self) -> ScriptCall | None:
        """The adoption still to run, as a script call, for the thread that shows the job
        as running (running.py) to run first; ``settle`` runs it otherwise."""
        return None if self._adopting is None else ("adopt", self._adopt_keys(), self._adopting)

    def settle(self) -> None:
        """Adopt the landed job (if the RUNNING marker has not already: adopt.lua is
        idempotent): from then on it is an ordinary claim. Raises while Redis is down;
        the adoption is then still pending, for the next call."""
        if self._adopting is None:
            return
        adopted = scripts.run(self._client, "adopt", self._adopt_keys(), self._adopting)
        token, self._adopting = self._adopting[0], None
        self._count(False)
        if not adopted:  # recovered meanwhile: its finish is fenced
            log.warning("job %s left the landing list before this worker adopted it", token)

    def _adopt_keys(self) -> list[str]:
        assert self._adopting is not None
        return [self._claims.landing(self._adopting[1]), self._inflight]

    def close(self) -> None:
        """Write the counts not written yet (the worker stops), give the connection back."""
        self._written_at -= STATS_EVERY
        try:
            if stats := self._stats_due():
                self._send(stats)
        except REDIS_DOWN as exc:
            log.warning("the last second's stat:processed counts are lost: %s", exc)
        finally:
            self._client.close()

    def _count(self, landing: bool) -> None:
        if landing != self._counted:
            self._worker.landing(1 if landing else -1)
            self._counted = landing

    def _connection(self) -> Any:
        return self._client.connection
