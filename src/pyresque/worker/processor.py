"""A processor: claim a job, run it with an executor, record how it ended; repeat.

A worker has one processor (fork and inline modes, in the main thread, as Resque) or
several (threads, asyncio and prefork modes, one thread each), sharing the worker's id,
lease and in-flight hash; each claims one job at a time, so priority holds as with one."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from pyresque.exceptions import Interrupted, WorkerBroken
from pyresque.executors.base import Executor
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import FinishPlan, Work, log_end
from pyresque.protocol import backoff
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import REDIS_DOWN, dedicated, raw
from pyresque.protocol.payload import Payload
from pyresque.protocol.running import Mark
from pyresque.worker.claiming import Claiming
from pyresque.worker.fetch import ClaimNotReplicated, Fetcher, Paused, QueuesChanged
from pyresque.worker.handoff import Box
from pyresque.worker.landing import Lander
from pyresque.worker.plain import plain
from pyresque.worker.signals import Wake

if TYPE_CHECKING:
    from pyresque.worker.host import Host

log = logging.getLogger("pyresque.worker")
NOT_THE_JOBS: tuple[type[BaseException], ...] = (WorkerBroken, *REDIS_DOWN)


class Processor(Claiming):
    """Runs jobs one after another for its worker."""

    def __init__(self, worker: Host, executor: Executor, index: int = 0) -> None:
        self.worker = worker
        self.executor = executor
        self._keys = worker.resque.keys
        self._redis = dedicated(worker.resque.redis)
        self.box = Box()  # where another processor hands us a job (handoff.py)
        # Claim tokens: unique in this worker's in-flight hash, also across restarts
        # under the same worker id (a reused pid), and cheaper than a uuid4 each.
        self._token_prefix = os.urandom(6).hex()
        self._token_count = itertools.count()
        policy = worker.resque.durability  # claims wait for replicas (fetch.py)
        # The queues, globs resolved once for all the worker's processors (queue_list.py).
        self.fetcher = Fetcher(
            self._redis, self._keys, worker.id, worker.resolution, policy, worker.waits
        )
        self.lander = Lander.of(worker, self.fetcher, index)  # lands claims (landing.py), or not
        self.idle = False  # waiting for work: a signal may end the wait (main thread only)
        self.running_inline = False  # a job runs in this thread: TERM may interrupt it
        self.busy = False  # a job is running
        self._mark: Mark | None = None  # the running job's pending RUNNING write
        self._started: bytes | None = None  # its status's ``started`` (JSON), if shown
        self.thread_id: int | None = None
        self.deadline: float | None = None  # monotonic time the running job must end by
        self.timed_out = False
        self._redis_ok = True
        self._backoff = backoff.Backoff(0.1, 10.0)
        self._crashes = 0  # crashes in a row (_crashed)

    def close(self) -> None:
        """Stop the executor and give the connection back (the worker is stopping)."""
        self.executor.close()
        self._redis.close()
        self.lander.close()

    def run(self) -> None:
        """Process jobs until the worker shuts down (or, with interval 0, until drained)."""
        self.thread_id = threading.get_ident()
        worker = self.worker
        claim: Claim | None = None
        while not worker.shutting_down:
            try:
                if claim is None:
                    claim = self._next_job()
                    self._redis_back()  # on a quiet queue too: no job needs to finish first
                    if claim is None:
                        if worker.options.interval == 0 and not worker.paused and worker.lease_ok():
                            return
                        continue
                    if worker.shutting_down:  # a wait or a handoff delivered it as we stopped:
                        continue  # given back unrun below, not started after the TERM
                # Finishing a job claims the next one in the same round trip.
                claim = self._process(claim)
                self._redis_back()
                self._crashes = 0
            except REDIS_DOWN as exc:
                if claim is not None:  # held, not run (_redis_back failed after the claim):
                    worker.release(claim.token)  # an orphan now, for _redis_back to give back
                    self.lander.drop(claim)  # on the landing list, then
                claim = None  # a claim whose reply was lost is given back by _redis_back
                if isinstance(exc, ClaimNotReplicated):
                    worker.give_back_unreplicated()  # back on their queues while we back off
                self._redis_down(exc)
            except Wake:
                pass
            except WorkerBroken:
                raise  # not the job's fault: the worker gives it back uncounted and exits
            except Exception:
                self._crashed(claim)
                claim = None
        if claim is not None:  # claimed just as we were told to stop
            self._give_back(claim)

    def _crashed(self, claim: Claim | None) -> None:
        """An exception nobody foresaw escaped the loop (a bug, or data no check caught).
        Contain it: log it, give the job back as a crash (a job that keeps doing this
        becomes a PoisonJob after --max-crashes, as if it killed its worker), back off so
        a crash loop never spins, and go on."""
        job = f"job {claim.token} from {claim.queue}" if claim else "no job"
        log.exception("processor crashed (holding %s); giving the job back as a crash", job)
        self._crashes += 1
        try:
            if claim is not None:
                self._give_back(claim, crashed=True)
            self.worker.give_back_orphans()
        except REDIS_DOWN as exc:
            self._redis_ok = False  # _redis_back gives it back once Redis is back
            log.error("could not give the job back yet (%s)", exc)
        self._wait(backoff.delay(self._crashes, 0.1, 5.0), block=False)

    # --- running a job ----------------------------------------------------------

    def _process(self, claim: Claim) -> Claim | None:
        """Run a claimed job through the worker's middleware, record its outcome, and
        return the next claim (if any).

        Whatever goes wrong with one job (its payload, its class, a middleware, the
        executor) makes that job fail with the error, never stops this processor."""
        started = time.monotonic()
        work, outcome, refused = Work.of(claim, self.worker.resque.registry)
        if outcome is None:
            if work.job is not None and type(work.job).limits:
                self.lander.settle()  # limits move the in-flight record
            outcome = self._run(work)
            if outcome.kind == "deferred":
                return None  # a limit refused it: it waits (parked or delayed), unclaimed
        work.seconds = time.monotonic() - started
        log_end(work, outcome)
        return self._finish(work, outcome, refused)

    def _run(self, work: Work) -> Outcome:
        try:
            return self.worker.middleware.process(work, lambda: self._dispatch(work))
        except Interrupted as exc:  # TERM (or a cancel) arrived just outside the job's own try
            return Outcome.stopped(exc)
        except NOT_THE_JOBS:
            raise  # not the job's fault: the worker exits, or waits for Redis
        except Exception as exc:  # a fault outside the job's own code (middleware, executor)
            log.exception("job %s: running it failed", _name(work.claim, work.payload))
            return Outcome.failed(exc)

    def _dispatch(self, work: Work) -> Outcome:
        """The innermost step of the worker's chain: hand the job to the executor."""
        worker, job = self.worker, work.job
        assert job is not None
        self.deadline = time.monotonic() + float(work.timeout) if work.timeout else None
        self.timed_out = False
        self.running_inline, self.busy = self.executor.runs_in_thread, True
        self._started = None
        worker.running_jobs.begin(job, self.executor)  # cancel, reports (running_jobs.py)
        try:
            outcome = self.executor.execute(
                job, work.timeout, worker.stop, lambda: self._running(work)
            )
        except Interrupted as exc:  # TERM (or a cancel) arrived just outside the job's own try
            outcome = Outcome.stopped(exc)
        finally:
            worker.running_jobs.end(job)
            if self._mark is not None:
                self._mark.finish()
                self._started = self._mark.started  # a tracked job's, if it was shown
                self._mark = None
            self.busy = self.running_inline = False
            self.deadline = None
            if not worker.stop.interrupt:
                worker.stop.kill = False  # a USR1 is for the job that was running
        worker.lease_ok()  # a job stopped because the lease was lost: say why (once)
        work.timed_out = self.timed_out  # the watchdog stopped a threaded job (timeouts.py)
        return outcome

    def _running(self, work: Work) -> Mark:
        """The job is under way: ``worker:<id>`` and its RUNNING status follow shortly if
        it is still running (running.RunningMarker), once the executor asks (``show``).
        The process title says so now: in fork and prefork modes, after the hand-over to
        the child, off the way to the job's first line."""
        worker, lander, marker = self.worker, self.lander, self.worker.running_marker
        payload = work.payload
        assert payload is not None
        worker.title(
            f"Processing {work.claim.queue} since {int(time.time())} [{payload.class_name}]"
        )
        landed = lander.landed_on(work.claim)  # shown from its landing list, not adopted
        adoption = None if landed else lander.adoption()
        self._mark = marker.started(work.claim, work.payload, adoption, landed)
        return self._mark

    def _finish(self, work: Work, outcome: Outcome, refused: Payload | None) -> Claim | None:
        """Record the outcome and claim the next job. If Redis is down, keep trying: the
        job stays in flight meanwhile, so it is never lost."""
        retrying = fallback = False
        while True:
            try:
                next_claim = self._record(work, outcome, not retrying, refused)
                self._redis_back()  # after a retry: gives back a claim whose reply was lost
                return next_claim
            except QueuesChanged:
                continue  # nothing was written: plan again with the queues as they are now
            except REDIS_DOWN as exc:
                retrying = True
                self._redis_down(exc)
                if self.worker.stop.kill:  # exit now: the lease will expire, others recover
                    return None
            except Exception as exc:
                if fallback:
                    raise  # even the plainest record failed: a bug; the worker must stop
                # Record the plainest failure instead: the raw bytes and this error.
                log.exception(
                    "job %s: recording its outcome failed", _name(work.claim, work.payload)
                )
                work = dataclasses.replace(work, payload=None, job=None)
                outcome, fallback = Outcome.failed(exc), True

    def _record(
        self, work: Work, outcome: Outcome, claim_next: bool, refused: Payload | None
    ) -> Claim | None:
        worker, claim = self.worker, work.claim
        interrupted = outcome.kind == "interrupted" and not worker.options.fail_interrupted
        if interrupted or outcome.kind == "unstarted":  # back to the head of its queue
            self._give_back(claim)
            return None
        if outcome.kind == "interrupted":
            outcome = Outcome.failed(Interrupted("the worker was stopped while the job ran"))
        # Retries, unique locks and limits add their part to the same atomic step.
        plan = worker.middleware.plan(work, outcome)
        held = worker.shutting_down or worker.paused or worker.heartbeat.paused_all
        claim_next = claim_next and not held and worker.lease_ok()
        lander = self.lander
        if isinstance(lander, Lander) and lander.holds(claim) and plain(work, plan, refused):
            return self._finish_landed(lander, work, plan, outcome, claim_next)
        return self._finish_script(work, plan, outcome, refused, claim_next)

    def _finish_script(
        self, work: Work, plan: FinishPlan, outcome: Outcome, refused: Payload | None, more: bool
    ) -> Claim | None:
        """The finish call (finish.lua; with ``more``, the next claims too)."""
        worker, claim = self.worker, work.claim
        self.lander.settle()  # a landed job is in flight once adopted
        shown = worker.running_marker.shown()  # worker:<id> may be written: delete it if idle
        # Not while a sibling runs a job: one on its landing list is not in flight in the
        # hash whose emptiness finish.lua takes for an idle worker.
        shown = None if worker.working() else shown
        shard, head = self.fetcher.finish_keys(claim.queue)  # on Cluster, the queue's slot
        keys, args = plan.call(shard, head, work, outcome, refused, worker.id, shown is not None)
        boxes: list[Box] = []
        tokens: list[str] = []
        if more and not self.lander.fast:  # else the next claim lands (landing.py)
            self.fetcher.refresh()
            boxes, tokens = self._tokens_for_free()
        finished = 0
        claims: list[Claim] | Paused = []
        try:
            finished, claims = self.fetcher.finish(keys, args, tokens)
        finally:  # even when the call failed: every box gets an answer
            next_claim = self._hand_out(tokens, boxes, claims)
        if finished == 2 and shown is not None:
            worker.running_marker.cleared(shown)
        return self._recorded(work, plan, outcome, finished > 0, next_claim)

    def _finish_landed(
        self, lander: Lander, work: Work, plan: FinishPlan, outcome: Outcome, claim_next: bool
    ) -> Claim | None:
        """A plain landed job's finish and the next claim, one pipeline (landing.py)."""
        worker, payload = self.worker, work.payload
        shown = worker.running_marker.shown()
        status = None
        if payload is not None and payload.id:
            key, started = self._keys.status(payload.id, payload.prefix), self._started
            status = (key, outcome.result_json(), started.decode() if started else None)
        if claim_next:
            self.fetcher.refresh()  # globs: the busy worker's claims come from here
        tokens = [worker.hold(self._new_token())] if claim_next else []
        claims: list[Claim] | Paused = []
        ours = False
        try:
            ours, claims = lander.finish(work.claim, status, tokens[0] if tokens else None)
        finally:
            next_claim = self._hand_out(tokens, [], claims)
        idle = not isinstance(next_claim, Claim) and not worker.working()  # siblings too
        if shown is not None and idle:
            self._redis.delete(self._keys.worker(worker.id))
            worker.running_marker.cleared(shown)
        return self._recorded(work, plan, outcome, ours, next_claim)

    def _recorded(
        self,
        work: Work,
        plan: FinishPlan,
        outcome: Outcome,
        recorded: bool,
        next_claim: Claim | Paused | None,
    ) -> Claim | None:
        """After a finish call: the middleware's ``finished``, the counts, the log."""
        worker, claim, payload = self.worker, work.claim, work.payload
        worker.middleware.finished(work, plan, recorded)  # wakes waiters, counts history
        worker.release(claim.token)
        if recorded:
            worker.running_jobs.finished(work.job, plan)  # its checkpoint goes
            worker.count(plan.outcome != "failed")
        else:
            log.warning(
                "job %s finished after this worker lost its lease (or Redis lost the reply); "
                "it was already recovered or recorded, so this %s outcome is discarded",
                payload.id if payload else claim.token,
                outcome.kind,
            )
        return next_claim if isinstance(next_claim, Claim) else None

    def _give_back(self, claim: Claim, crashed: bool = False) -> None:
        """Put a claimed job back at the head of its queue, not counted as an attempt
        unless it ``crashed`` this processor."""
        try:
            self.lander.settle()
            inflight = self._keys.for_queue(claim.queue).inflight(self.worker.id)
            record = self._redis.hget(inflight, claim.token)
            if record is not None:
                self.worker.recovery.give_back(
                    self.worker.id, claim.token, raw(record), crashed, owner=True
                )
        finally:  # not given back (Redis is down): an orphan, for _redis_back
            self.worker.release(claim.token)

    # --- Redis outages ----------------------------------------------------------

    def _redis_down(self, exc: BaseException) -> None:
        """Log once, then back off (capped, with jitter) before the next try."""
        if self._redis_ok:
            log.error("Redis unavailable (%s); retrying with backoff", exc)
            self._redis_ok = False
            self._backoff.reset()
        self._wait(self._backoff.next(), block=False)

    def _redis_back(self) -> None:
        if self._redis_ok:
            return
        # A claim whose reply was lost in the outage left a job in flight that no
        # processor knows about: give it back, or it would wait for our lease.
        self.worker.give_back_orphans()
        log.warning("Redis is back")
        self._redis_ok = True


def _name(claim: Claim, payload: Payload | None) -> str:  # its id, class, or claim token
    return (payload.id or payload.class_name) if payload is not None else claim.token
