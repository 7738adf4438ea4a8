"""The worker: claim a job, run it with an executor, record how it ended; repeat.

The loop is Resque's (spec section 5), with three changes that matter:
claiming is atomic and leaves an in-flight record (fetch.py), an idle worker
blocks on a wake-up list instead of sleeping, and a background heartbeat keeps
the worker's lease and recovers the jobs of dead workers (recovery.py).

Signals are Resque's: QUIT finishes the job then exits; TERM/INT stop the job
(TERM, a grace period, then KILL), give it back to its queue and exit, and a
second TERM kills at once; USR1 kills the job and goes on; USR2 pauses; CONT
resumes. ``pyresque ctl`` reaches a worker on any host by turning a command
sent through Redis into the same signal.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import redis
import setproctitle

from pyresque import __version__, scripts
from pyresque.client import Resque
from pyresque.connection import raw, text
from pyresque.executor import Executor, Stop, make_executor
from pyresque.failure import failure_record
from pyresque.fetch import PAUSED, Claim, Fetcher, QueueList
from pyresque.history import bucket_label, history_keys
from pyresque.job import Job, UnknownJob
from pyresque.payload import MalformedPayload, Payload
from pyresque.perform import Interrupted, Outcome
from pyresque.recovery import Heartbeat, Recovery, started_text, worker_keys
from pyresque.status import Status

log = logging.getLogger("pyresque.worker")

#: ``pyresque ctl`` commands and the signal each one stands for.
COMMANDS = {
    "quit": signal.SIGQUIT,
    "term": signal.SIGTERM,
    "pause": signal.SIGUSR2,
    "resume": signal.SIGCONT,
    "kill-job": signal.SIGUSR1,
}


class _Wake(Exception):
    """Raised by a signal handler to end an idle blocking wait at once."""


@dataclass
class WorkerOptions:
    """How a worker runs. Each field has an environment variable and a CLI flag."""

    interval: float = 5.0  # seconds between polls; 0 = drain the queues and exit
    blocking: bool = True  # wait on the wake-up list (instead of sleeping) between polls
    mode: str = "fork"  # fork | inline
    lease_ttl: float = 5.0  # a dead worker's jobs come back within about this + 1 s
    term_timeout: float = 10.0  # grace between TERM and KILL for the running job
    fail_interrupted: bool = False  # fail a job stopped by TERM (Resque) instead of requeueing
    max_crashes: int = 3  # a job that killed this many workers goes to failed
    pidfile: str | None = None


class Worker:
    """One Resque worker process. ``work()`` runs until it is told to stop."""

    def __init__(
        self,
        resque: Resque,
        queues: str | list[str] | QueueList,
        options: WorkerOptions | None = None,
    ) -> None:
        self.resque = resque
        self.options = options or WorkerOptions()
        self.queues = queues if isinstance(queues, QueueList) else QueueList.parse(queues)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname}:{self.pid}:{self.queues.id_part}"
        keys = resque.keys
        self._keys = keys
        lease_ms = int(self.options.lease_ttl * 1000)
        self.fetcher = Fetcher(resque.redis, keys, self.id, self.queues, lease_ms)
        self.executor: Executor = make_executor(self.options.mode, resque.events)
        self.recovery = Recovery(
            resque.redis, keys, resque.registry, self.options.max_crashes, self.id
        )
        self.heartbeat = Heartbeat(
            resque.redis, keys, self.id, lease_ms, started_text(), self.recovery, self._command
        )
        self.stop = Stop(grace=self.options.term_timeout)
        self.shutting_down = False
        self.paused = False
        self.processed = 0
        self.failed = 0
        self._idle = False  # a signal may interrupt the current wait
        self._inline_job = False  # a TERM interrupts the job running in this process
        self._redis_ok = True
        self._backoff = 0.1
        self._last_refresh = 0.0

    def __repr__(self) -> str:
        return f"Worker({self.id!r})"

    # --- life cycle -------------------------------------------------------------

    def work(self) -> None:
        """Register, process jobs until told to stop (or drained, with interval 0), unregister."""
        self._install_signals()
        self._startup()
        claim: Claim | None = None
        try:
            while not self.shutting_down:
                try:
                    if claim is None:
                        claim = self._next_job()
                        if claim is None:
                            if self.options.interval == 0 and not self.paused:
                                break
                            continue
                    # Finishing a job claims the next one in the same round trip.
                    claim = self._process(claim)
                    self._redis_back()
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    claim = None  # if a claim's reply was lost, _redis_back gives it back
                    self._redis_down(exc)
                except _Wake:
                    pass
        finally:
            self._teardown()

    def _startup(self) -> None:
        self._title("Starting")
        if self.options.pidfile:
            with open(self.options.pidfile, "w") as f:
                f.write(f"{self.pid}\n")
        self._with_redis(self.heartbeat.beat)  # registers us: workers set, started, lease
        self._with_redis(self.recovery.prune_foreign)
        self.resque.events.trigger("before_first_fork", self)
        self.heartbeat.start()
        log.info(
            "worker %s started (%s mode), queues: %s",
            self.id,
            self.executor.name,
            ",".join(self.queues.patterns),
        )

    def _teardown(self) -> None:
        self.heartbeat.stop()
        try:
            self._unregister()
        except redis.exceptions.RedisError as exc:
            log.error(
                "could not unregister from Redis (%s); another worker will prune us and "
                "recover any job we held once our lease expires",
                exc,
            )
        self.resque.events.trigger("worker_exit", self)
        if self.options.pidfile and os.path.exists(self.options.pidfile):
            os.unlink(self.options.pidfile)
        log.info(
            "worker %s stopped after %d jobs (%d failed)", self.id, self.processed, self.failed
        )

    def _unregister(self) -> None:
        self._give_back_all()  # never leave a job claimed
        scripts.run(
            self.resque.redis, "reap", worker_keys(self._keys, self.id), [self.id, "1", "", ""]
        )

    # --- fetching ---------------------------------------------------------------

    def _next_job(self) -> Claim | None:
        if self.paused:
            self._title("Paused")
            self._wait(self.options.interval or 1.0, block=False)
            return None
        self._refresh_queues()
        claim = self.fetcher.claim()
        if claim is PAUSED:
            self._title("Paused")
            self._wait(self.options.interval or 1.0, block=False)
            return None
        if isinstance(claim, Claim):
            return claim
        if self.options.interval > 0:
            self._title(f"Waiting for {','.join(self.queues.patterns)}")
            self._wait(self.options.interval, block=self.options.blocking)
        return None

    def _refresh_queues(self) -> None:
        """Re-expand queue globs at most once a second (one SMEMBERS)."""
        now = time.monotonic()
        if now - self._last_refresh >= 1.0:
            self.fetcher.refresh()
            self._last_refresh = now

    def _wait(self, seconds: float, block: bool) -> None:
        """Wait for a wake-up token (or just sleep); any signal ends the wait early."""
        try:
            self._idle = True
            if self.shutting_down:
                return
            if block and self.fetcher.refresh():
                self.fetcher.wait(seconds)
            else:
                threading.Event().wait(seconds)
        except _Wake:
            pass
        finally:
            self._idle = False

    # --- running a job ----------------------------------------------------------

    def _process(self, claim: Claim) -> Claim | None:
        """Run a claimed job, record its outcome, and return the next claim (if any)."""
        started = time.monotonic()
        payload: Payload | None = None
        try:
            payload = Payload.decode(claim.raw)
            job = self.resque.registry.get(payload.class_name)(payload, claim.queue)
        except (MalformedPayload, UnknownJob) as exc:
            outcome = Outcome.failed(exc)
        else:
            outcome = self._run(job, claim)
        seconds = time.monotonic() - started
        self._log(claim, payload, outcome, seconds)
        return self._finish(claim, payload, outcome, seconds)

    def _run(self, job: Job, claim: Claim) -> Outcome:
        payload = job.payload
        if payload.id:
            scripts.run(
                self.resque.redis,
                "set_status",
                [self._keys.status(payload.id, payload.prefix)],
                [int(Status.RUNNING), "null"],
            )
        self._title(f"Processing {claim.queue} since {int(time.time())} [{payload.class_name}]")
        if self.executor.name == "fork":
            self.resque.events.trigger("before_fork", job)
        timeout = payload.extra.get("timeout") or type(job).timeout
        self._inline_job = self.executor.name == "inline"
        try:
            outcome = self.executor.execute(job, timeout, self.stop)
        except Interrupted:  # TERM arrived just outside the job's own try
            outcome = Outcome("interrupted")
        finally:
            self._inline_job = False
        return outcome

    def _finish(
        self, claim: Claim, payload: Payload | None, outcome: Outcome, seconds: float
    ) -> Claim | None:
        """Record the outcome and claim the next job. If Redis is down, keep trying: the
        job stays in flight meanwhile, so it is never lost."""
        retrying = False
        while True:
            try:
                next_claim = self._record(claim, payload, outcome, seconds, not retrying)
                self._redis_back()  # after a retry: gives back a claim whose reply was lost
                return next_claim
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                retrying = True
                self._redis_down(exc)
                if self.stop.kill:  # told to exit now: the lease will expire, others recover
                    return None

    def _record(
        self,
        claim: Claim,
        payload: Payload | None,
        outcome: Outcome,
        seconds: float,
        claim_next: bool,
    ) -> Claim | None:
        if outcome.kind == "interrupted" and not self.options.fail_interrupted:
            record = self.resque.redis.hget(self._keys.inflight(self.id), claim.token)
            if record is not None:
                self.recovery.give_back(self.id, claim.token, raw(record), crashed=False)
            return None
        if outcome.kind == "interrupted":
            outcome = Outcome.failed(Interrupted("the worker was stopped while the job ran"))
        keys = [
            self._keys.inflight(self.id),
            self._keys.worker(self.id),
            self._keys.stat("processed"),
            self._keys.stat("processed", self.id),
            self._keys.stat("failed"),
            self._keys.stat("failed", self.id),
            self._keys.failed,
            *history_keys(self._keys),
            self._keys.class_stats,
        ]
        if payload and payload.id:
            keys.append(self._keys.status(payload.id, payload.prefix))
        record = ""
        if not outcome.ok:
            shown = payload.to_dict() if payload else claim.raw.decode("utf-8", "backslashreplace")
            record = failure_record(
                shown, outcome.exception, outcome.error, outcome.backtrace, self.id, claim.queue
            )
        ms = seconds * 1000
        name = payload.class_name if payload else "(malformed)"
        args = [
            claim.token,
            "ok" if outcome.ok else "failed",
            outcome.result_json(),
            record,
            name,
            f"{ms:.3f}",
            bucket_label(ms),
        ]
        claim_next = claim_next and not self.shutting_down and not self.paused
        if claim_next:
            self._refresh_queues()
        recorded, next_claim = self.fetcher.finish(keys, args, claim_next)
        if recorded:
            self.processed += 1
            self.failed += 0 if outcome.ok else 1
        else:
            log.warning(
                "job %s finished after this worker lost its lease (or Redis lost the reply); "
                "it was already recovered or recorded, so this %s outcome is discarded",
                payload.id if payload else claim.token,
                outcome.kind,
            )
        return next_claim if isinstance(next_claim, Claim) else None

    def _log(self, claim: Claim, payload: Payload | None, outcome: Outcome, seconds: float) -> None:
        name = payload.class_name if payload else "?"
        job_id = payload.id if payload and payload.id else "-"
        detail = f": {outcome.exception}: {outcome.error}" if outcome.kind == "failed" else ""
        log.info(
            "job %s %s from %s %s in %.1f ms%s",
            job_id,
            name,
            claim.queue,
            outcome.kind,
            seconds * 1000,
            detail,
        )

    # --- Redis outages ----------------------------------------------------------

    def _redis_down(self, exc: BaseException) -> None:
        """Log once, then back off (capped, with jitter) before the next try."""
        if self._redis_ok:
            log.error("Redis unavailable (%s); retrying with backoff", exc)
            self._redis_ok = False
            self._backoff = 0.1
        self._wait(self._backoff * random.uniform(0.8, 1.2), block=False)
        self._backoff = min(self._backoff * 2, 10.0)

    def _redis_back(self) -> None:
        if self._redis_ok:
            return
        # A claim whose reply was lost in the outage left a job in flight that this
        # worker does not know about: give it back, or it would wait for our lease.
        self._give_back_all()
        log.warning("Redis is back")
        self._redis_ok = True

    def _give_back_all(self) -> None:
        """Put every job this worker holds in flight back at the head of its queue."""
        for token, record in self.resque.redis.hgetall(self._keys.inflight(self.id)).items():
            self.recovery.give_back(self.id, text(token), raw(record), crashed=False)

    def _with_redis(self, step: Callable[[], object]) -> None:
        while not self.shutting_down:
            try:
                step()
                self._redis_back()
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self._redis_down(exc)

    # --- signals and commands ---------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread; stop with shutdown() instead
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self.stop.wakeup_fd = read_fd
        handlers = {
            signal.SIGQUIT: self._on_quit,
            signal.SIGTERM: self._on_term,
            signal.SIGINT: self._on_term,
            signal.SIGUSR1: self._on_usr1,
            signal.SIGUSR2: self._on_pause,
            signal.SIGCONT: self._on_resume,
        }
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        log.info("QUIT: finishing the current job, then exiting")
        self.shutdown()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.interrupt:
            log.warning("second %s: killing the job now", signal.Signals(signum).name)
            self.stop.kill = True
        else:
            log.info("%s: stopping the current job and exiting", signal.Signals(signum).name)
            self.stop.interrupt = True
        self.shutdown()
        if self._inline_job:
            if self.stop.kill:
                raise Interrupted(f"stopped by {signal.Signals(signum).name}")
            # The job gets the grace period; then the alarm interrupts it (executor.py).
            remaining = signal.getitimer(signal.ITIMER_REAL)[0]
            grace = max(self.stop.grace, 0.001)
            signal.setitimer(signal.ITIMER_REAL, min(remaining, grace) if remaining else grace)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        log.info("USR1: killing the current job")
        self.stop.kill = not self._idle

    def _on_pause(self, signum: int, frame: FrameType | None) -> None:
        if not self.paused:
            self.resque.events.trigger("before_pause", self)
            log.info("USR2: paused")
        self.paused = True
        if self._idle:
            raise _Wake

    def _on_resume(self, signum: int, frame: FrameType | None) -> None:
        if self.paused:
            self.resque.events.trigger("after_pause", self)
            log.info("CONT: resumed")
        self.paused = False
        if self._idle:
            raise _Wake

    def shutdown(self) -> None:
        """Finish the current job, then exit (QUIT)."""
        self.shutting_down = True
        if self._idle and threading.current_thread() is threading.main_thread():
            raise _Wake

    def _command(self, command: str) -> None:
        """A ``pyresque ctl`` command, from the heartbeat thread: deliver it as a signal."""
        sig = COMMANDS.get(command)
        if sig is None:
            log.warning("ignoring unknown control command %r", command)
        else:
            os.kill(self.pid, sig)

    def _title(self, text: str) -> None:
        prefix = os.environ.get("RESQUE_PROCLINE_PREFIX", "")
        setproctitle.setproctitle(f"{prefix}resque-{__version__}: {text}")
