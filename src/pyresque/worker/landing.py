"""Landing: an idle worker's wait that claims the job it waits for, in one command.

A worker that serves one queue waits with ``BLMOVE queue:<q> pyresque:landing:<id>
LEFT RIGHT``: the job that wakes it moves, atomically, onto the worker's landing
list, and the reply carries it, so the job starts one round trip after its push, as
a bare ``BRPOP`` loop's would (a wake-up token and a claim call took two). Ruby and
PHP producers' pushes wake it as well.

The job then runs from the landing list; its adoption (adopt.lua: it leaves the
landing list for the in-flight hash under its claim token) is no system call on the
way to the job's start: the RUNNING marker runs it first for a job still running
after a few milliseconds (running.py, which then shows it in ``worker:<id>``), and
the processor before anything else touches the job in Redis (``settle``: its finish,
a give-back, its limits).

Why nothing is lost: the job is always on its queue, on the landing list, or in the
in-flight hash. Recovery of a dead worker, ``reap``, the give-back on exit and of
orphans all read the landing list too (recovery.py), its queue named by the worker
id (a worker lands jobs only when its id names its one queue).

Fencing: a job may have landed while the worker's lease had lapsed, and a worker
that took over may have recovered it already. So a landed job runs only if the
lease was held without a lapse from before the ``BLMOVE`` was sent until its reply
was read (``Stop.lapses``: no renewal came after the lease's run deadline had passed,
so the Redis lease never expired in between and no recovery could run), and the
worker is not paused or stopping; otherwise it goes back to the head of its queue.

Not used (the wake-up token and the claim call instead) for a worker with several
queues or globs (``BLMOVE`` takes one source; ``BLMPOP`` would hold a job only in
the worker's memory), with a durability policy (a move the replicas may not have),
or on Redis Cluster (worker/sharded.py waits on every slot).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import REDIS_DOWN, dedicated, raw
from pyresque.protocol.scripts import ScriptCall
from pyresque.worker.recovery import landing_queue
from pyresque.worker.signals import Running, Wake

if TYPE_CHECKING:
    from pyresque.worker.host import Host

log = logging.getLogger("pyresque.worker")

#: Longest wait of one BLMOVE. A job that lands after ``pause-all-workers`` was set
#: still runs (the claim call checked the key before the wait), so an idle worker
#: honours that key within this.
LAND_WAIT = 1.0


class NoLanding:
    """The lander of a processor whose worker cannot land jobs: nothing to adopt."""

    def adoption(self) -> ScriptCall | None:
        return None

    def settle(self) -> None:
        pass

    def close(self) -> None:
        pass


class Lander:
    """One processor's blocking claim on its worker's one queue: the ``BLMOVE``, and the
    adoption of what it landed, on a connection of its own."""

    def __init__(self, worker: Host, queue: str) -> None:
        self._worker = worker
        keys = worker.resque.keys
        self.queue = queue
        self._client = dedicated(worker.resque.redis)
        self._queue_key = keys.queue(queue)
        self._keys = [keys.landing(worker.id), keys.inflight(worker.id)]
        self._lapses = 0  # Stop.lapses when the BLMOVE was sent
        self._adopting: list[Any] | None = None  # adopt.lua's ARGV, until it ran
        self._unsure = False  # a wait ended without its reply: a job may be on the list
        self._counted = False  # this lander counts in the worker's landing (Worker.landing)

    @classmethod
    def of(cls, worker: Host) -> Lander | NoLanding:
        """A lander for a processor of ``worker``, or NoLanding when it cannot land jobs."""
        queues, keys = worker.queues, worker.resque.keys
        if queues.dynamic or len(queues.included) != 1 or worker.resque.durability:
            return NoLanding()
        if keys.clustered:  # the landing list is not in the queue's slot (worker/sharded.py)
            return NoLanding()
        if not worker.options.blocking or landing_queue(worker.id) != queues.included[0]:
            return NoLanding()
        return cls(worker, queues.included[0])

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
            claim = None if landed is None else self.take(landed, token)
            return claim
        finally:
            if claim is None:
                worker.release(token)

    def block(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` (at most LAND_WAIT) seconds for a job to land; its
        payload, or None. Every job that landed is either returned or found by the next
        ``block``, which gives back what an interrupted wait left (a signal, an outage).
        A connection that failed (a Redis restart left it stale) is tried once more."""
        for attempt in range(2):
            if self._unsure:
                self._worker.give_back_orphans()  # raises while Redis is down: tried again
                self._unsure = False
            self._count(True)
            self._lapses = self._worker.stop.lapses
            try:
                connection = self._connection()
                wait = f"{min(timeout, LAND_WAIT):.3f}"
                connection.send_command(
                    "BLMOVE", self._queue_key, self._keys[0], "LEFT", "RIGHT", wait
                )
                reply = connection.read_response()
            except REDIS_DOWN:
                self.interrupted()
                if attempt:
                    raise
                continue
            except BaseException:
                self.interrupted()
                raise
            if reply is None:
                self._count(False)
                return None
            return raw(reply)
        raise AssertionError("unreachable")  # pragma: no cover

    def interrupted(self) -> None:
        """A wait ended without its job handed on: the next ``block`` gives back what
        may have landed."""
        self._unsure = True
        self._count(False)

    def take(self, payload: bytes, token: str) -> Claim | None:
        """The claim of a job ``block`` returned, its adoption under ``token`` sent; or
        None when it may not run here (see the module's fencing), after it went back."""
        worker = self._worker
        runs = worker.stop.lapses == self._lapses and worker.lease_ok()
        if not runs or worker.paused or worker.shutting_down:
            try:
                worker.recovery.give_back_landed(worker.id, self.queue, payload, False, owner=True)
            except REDIS_DOWN:
                self._unsure = True
                raise
            finally:
                self._count(False)
            return None
        self._adopting = [token, self.queue, payload]
        return Claim(token, self.queue, payload)

    def adoption(self) -> ScriptCall | None:
        """The adoption still to run, as a script call, for the thread that shows the job
        as running (running.py) to run first; ``settle`` runs it otherwise."""
        return None if self._adopting is None else ("adopt", self._keys, self._adopting)

    def settle(self) -> None:
        """Adopt the landed job (if the RUNNING marker has not already: adopt.lua is
        idempotent): from then on it is an ordinary claim. Raises while Redis is down;
        the adoption is then still pending, for the next call."""
        if self._adopting is None:
            return
        adopted = scripts.run(self._client, "adopt", self._keys, self._adopting)
        token, self._adopting = self._adopting[0], None
        self._count(False)
        if not adopted:  # recovered meanwhile: its finish is fenced
            log.warning("job %s left the landing list before this worker adopted it", token)

    def close(self) -> None:
        self._client.close()

    def _count(self, landing: bool) -> None:
        if landing != self._counted:
            self._worker.landing(1 if landing else -1)
            self._counted = landing

    def _connection(self) -> Any:
        return self._client.connection
