"""The worker: registration, signals, the heartbeat, and its processors.

The loop that claims and runs jobs lives in processor.py; how a job runs lives
in the executors (executor.py, forking.py). A worker has one processor in fork
and inline modes (in the main thread, exactly like Resque) and N processors in
threads, asyncio and prefork modes. A background heartbeat keeps the worker's
lease and recovers the jobs of dead workers (recovery.py).

Signals are Resque's: QUIT finishes the current job then exits; TERM/INT stop
the running jobs (TERM, a grace period, then KILL), give them back to their
queues and exit, and a second TERM kills at once; USR1 kills the current job
and goes on; USR2 pauses; CONT resumes. ``pyresque ctl`` reaches a worker on
any host by turning a command sent through Redis into the same signal.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import redis
import setproctitle

from pyresque.client.resque import Resque
from pyresque.executors.forking import ForkExecutor, PreforkExecutor
from pyresque.executors.inprocess import (
    AsyncioExecutor,
    EventLoopThread,
    Executor,
    InlineExecutor,
    Stop,
    ThreadExecutor,
)
from pyresque.jobs.events import Events
from pyresque.jobs.job import Registry
from pyresque.jobs.perform import Interrupted, JobTimeout
from pyresque.middleware.history import HistoryBuffer
from pyresque.middleware.policies import JobPolicies
from pyresque.protocol import scripts
from pyresque.protocol.backtrace import WorkerBroken
from pyresque.protocol.connection import REDIS_DOWN, lease_client
from pyresque.protocol.status import RunningMarker
from pyresque.protocol.supervision import Supervised
from pyresque.scheduling import cron
from pyresque.scheduling.scheduler import Scheduler
from pyresque.version import __version__
from pyresque.worker.fetch import QueueList
from pyresque.worker.handoff import Handoff
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.processor import Processor, Wake, give_back_orphans
from pyresque.worker.recovery import Recovery, started_text, worker_keys

log = logging.getLogger("pyresque.worker")

#: ``pyresque ctl`` commands and the signal each one stands for.
COMMANDS = {
    "quit": signal.SIGQUIT,
    "term": signal.SIGTERM,
    "pause": signal.SIGUSR2,
    "resume": signal.SIGCONT,
    "kill-job": signal.SIGUSR1,
}

#: Processors per worker when no concurrency is given (0: one per CPU).
DEFAULT_CONCURRENCY = {"fork": 1, "inline": 1, "threads": 10, "asyncio": 20, "prefork": 0}
MODES = tuple(DEFAULT_CONCURRENCY)


@dataclass
class WorkerOptions:
    """How a worker runs. Each field has an environment variable and a CLI flag."""

    interval: float = 5.0  # seconds between polls; 0 = drain the queues and exit
    blocking: bool = True  # wait on the wake-up list (instead of sleeping) between polls
    mode: str = "fork"  # fork | inline | threads | asyncio | prefork
    concurrency: int | None = None  # jobs at once in threads, asyncio and prefork modes
    lease_ttl: float = 5.0  # a dead worker's jobs come back within about this + 1 s
    term_timeout: float = 10.0  # grace between TERM and KILL for running jobs
    fail_interrupted: bool = False  # fail a job stopped by TERM (Resque) instead of requeueing
    max_crashes: int = 3  # a job that killed this many workers goes to failed
    max_jobs_per_child: int = 1000  # prefork: recycle a child after this many jobs
    max_memory_mb: int = 0  # prefork: recycle a child whose peak memory passes this (0: never)
    pidfile: str | None = None
    with_scheduler: bool = False  # also run a scheduler (scheduler.py) in a background thread
    # The application's modules (--app): fork mode's zygote imports them in a fresh
    # interpreter; with none, the zygote is a copy of this process (zygote.py).
    app: tuple[str, ...] = ()


def make_executors(options: WorkerOptions, events: Events, jobs: Registry) -> list[Executor]:
    """One executor per processor."""
    mode = options.mode
    if mode not in DEFAULT_CONCURRENCY:
        raise ValueError(f"unknown execution mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "fork":
        return [ForkExecutor(events, options.app, jobs)]
    if mode == "inline":
        return [InlineExecutor(events)]
    n = options.concurrency or DEFAULT_CONCURRENCY[mode] or os.cpu_count() or 2
    if mode == "threads":
        return [ThreadExecutor(events) for _ in range(n)]
    if mode == "asyncio":
        loop = EventLoopThread()
        return [AsyncioExecutor(events, loop) for _ in range(n)]
    return [
        PreforkExecutor(events, options.max_jobs_per_child, options.max_memory_mb, jobs)
        for _ in range(n)
    ]


class Worker:
    """One Resque worker process. ``work()`` runs until it is told to stop."""

    def __init__(
        self,
        resque: Resque,
        queues: str | list[str] | QueueList,
        options: WorkerOptions | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.resque = resque
        self._on_ready = on_ready  # called once registered and taking jobs (supervisor.py)
        self.options = options or WorkerOptions()
        self.queues = queues if isinstance(queues, QueueList) else QueueList.parse(queues)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname}:{self.pid}:{self.queues.id_part}"
        self.lease_ms = int(self.options.lease_ttl * 1000)
        keys = resque.keys
        self._keys = keys
        self.recovery = Recovery(
            resque.redis, keys, resque.registry, self.options.max_crashes, self.id
        )
        self.history = HistoryBuffer()  # written by the heartbeat, once a second
        self.stop = Stop(grace=self.options.term_timeout)
        # The lease path's calls end within half the lease (connection.lease_client).
        self._lease_redis = lease_client(resque.redis, self.options.lease_ttl)
        self.heartbeat = Heartbeat(
            self._lease_redis,
            keys,
            self.id,
            self.lease_ms,
            started_text(),
            Recovery(self._lease_redis, keys, resque.registry, self.options.max_crashes, self.id),
            self._command,
            self.history,
            paused=lambda: self.paused,
            on_renewed=self.stop.lease_renewed,
        )
        self.running_marker = RunningMarker(self._lease_redis, keys)
        self._watchdog = Supervised("watchdog", log, 0.1)
        self._lease_lost_logged = False
        self.exit_code = 0  # non-zero: the worker could not go on (``pyresque worker`` exits so)
        self.shutting_down = False
        self.paused = False
        self.processed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._held: set[str] = set()  # claim tokens processors hold (claimed or claiming)
        self._processor_died: BaseException | None = None  # why a processor thread ended
        # Retries, unique locks and limits: the hooks around each job (policies.py).
        self.policies = JobPolicies(resque.redis, keys, resque.registry, self.id, self.release)
        self.scheduler: Scheduler | None = None
        if self.options.with_scheduler:
            self.scheduler = Scheduler(resque, cron.schedules)
        executors = make_executors(self.options, resque.events, resque.registry)
        self.processors = [Processor(self, executor) for executor in executors]
        self.mode = executors[0].name
        # fork and inline run their one processor in the main thread, as Resque does.
        self._main = self.processors[0] if self.mode in ("fork", "inline") else None
        # Concurrent modes: one call claims for every free processor (handoff.py).
        self.handoff = Handoff() if self._main is None and len(self.processors) > 1 else None

    def __repr__(self) -> str:
        return f"Worker({self.id!r})"

    # --- life cycle -------------------------------------------------------------

    def work(self) -> None:
        """Register, process jobs until told to stop (or drained, with interval 0), unregister.

        An unexpected error that stops the worker is logged; its jobs go back to their
        queues as crashes (uncounted if the worker itself is broken) and ``exit_code``
        is 1, so that ``pyresque worker`` exits non-zero and is restarted."""
        self._install_signals()
        crashed = False
        try:
            self._startup()
            if self._main is not None:
                self._main.run()
            else:
                self._run_threads()
        except WorkerBroken as exc:  # not the jobs' fault
            log.error("worker %s cannot run jobs, exiting: %s", self.id, exc)
            self.exit_code = 1
        except Exception:
            log.exception("worker %s crashed; its jobs go back to their queues as crashes", self.id)
            self.exit_code, crashed = 1, True
        finally:
            self._teardown(crashed)

    def _run_threads(self) -> None:
        threads = [
            threading.Thread(target=self._run_processor, args=(p,), name=f"pyresque-processor-{i}")
            for i, p in enumerate(self.processors)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        while any(t.is_alive() for t in threads):
            try:
                self.sleep(self._watchdog.call(self._watch_threads))
            except Wake:
                pass
        if self._processor_died is not None:
            raise RuntimeError("a processor thread died") from self._processor_died

    def _run_processor(self, processor: Processor) -> None:
        """A processor thread. One that dies (a processor contains what it can, so this is
        rare) makes the worker stop taking jobs and exit non-zero: never 0 with work left."""
        try:
            processor.run()
        except BaseException as exc:
            if isinstance(exc, Interrupted) and self.stop.interrupt:
                return  # TERM's grace ran out between jobs: stopping anyway
            self._processor_died = self._processor_died or exc
            self.shutting_down = True

    def _watch_threads(self) -> None:
        """Enforce timeouts, the TERM grace period and the lease on jobs running in
        processor threads."""
        now = time.monotonic()
        for p in self.processors:
            if not isinstance(p.executor, ThreadExecutor):
                continue
            if p.deadline and now >= p.deadline and not p.timed_out:
                p.timed_out = p.executor.interrupt(JobTimeout)
            elif self.stop.grace_over():
                p.executor.interrupt(Interrupted)

    def _startup(self) -> None:
        self.title("Starting")
        if self.options.pidfile:
            with open(self.options.pidfile, "w") as f:
                f.write(f"{self.pid}\n")
        # The first beat registers us (workers set, started, lease) and reports dead workers:
        # recover them now, so even a burst worker that drains in a second does.
        self._with_redis(self.heartbeat.beat_and_recover)
        self._with_redis(self.recovery.prune_foreign)
        self.resque.events.trigger("before_first_fork", self)
        for processor in self.processors:
            processor.executor.start()
        # Starting the executors (a zygote) can take longer than the lease's margin:
        # renew it before taking jobs. (Not by starting the thread earlier: the zygote
        # may be forked from this process, better with no other thread running.)
        self.heartbeat.renew()
        self.heartbeat.start()
        self.running_marker.start()
        if self._on_ready:
            self._on_ready()
        if self.scheduler is not None:
            self.scheduler.start()
        log.info(
            "worker %s started (%s mode, %d at a time), queues: %s",
            self.id,
            self.mode,
            len(self.processors),
            ",".join(self.queues.patterns),
        )

    def _teardown(self, crashed: bool = False) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        self.heartbeat.stop()
        self.running_marker.stop()
        self._lease_redis.close()
        for processor in self.processors:
            processor.close()
        try:
            self.history.flush(self.resque.redis, self._keys)
        except redis.exceptions.RedisError as exc:
            log.warning("the last second's history counts are lost: %s", exc)
        try:
            self.give_back_orphans(all_jobs=True, crashed=crashed)  # never leave a job claimed
            scripts.run(
                self.resque.redis, "reap", worker_keys(self._keys, self.id), [self.id, "1", "", ""]
            )
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

    def _with_redis(self, step: Callable[[], object]) -> None:
        """Run a startup step, waiting out a Redis outage."""
        delay = 0.1
        while not self.shutting_down:
            try:
                step()
                return
            except REDIS_DOWN as exc:
                log.error("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                self.sleep(delay)
                delay = min(delay * 2, 10.0)

    # --- shared by the processors ---------------------------------------------

    def hold(self, token: str) -> str:
        """Note that a processor claims (or holds) the job of ``token``."""
        with self._lock:
            self._held.add(token)
        return token

    def release(self, token: str) -> None:
        with self._lock:
            self._held.discard(token)

    def lease_ok(self) -> bool:
        """Whether jobs may run and be claimed: the heartbeat renewed the lease recently
        enough (``Stop.lease_lost``). While it has not, running jobs are stopped and
        none are claimed, so another worker that recovers them never runs them at the
        same time. A heartbeat thread that died cannot renew it again: then the worker
        stops, with a non-zero exit status so that it is restarted."""
        if not self.stop.lease_lost():
            if self._lease_lost_logged:
                log.warning("worker %s renewed its lease: taking jobs again", self.id)
                self._lease_lost_logged = False
            return True
        if not self._lease_lost_logged:
            self._lease_lost_logged = True
            log.error(
                "worker %s could not renew its lease (%.1f s) in time (Redis unreachable or "
                "too slow): its running jobs are stopped and go back to their queues, and it "
                "takes no new ones until the lease is renewed",
                self.id,
                self.options.lease_ttl,
            )
        if self.heartbeat.ident is not None and not self.heartbeat.is_alive():
            log.critical("worker %s: the heartbeat thread died; exiting (status 1)", self.id)
            self.exit_code = 1
            self.shutting_down = True
        return False

    def count(self, ok: bool) -> None:
        with self._lock:
            self.processed += 1
            self.failed += 0 if ok else 1

    def give_back_orphans(self, all_jobs: bool = False, crashed: bool = False) -> int:
        """Give back in-flight jobs that no processor holds (claims whose reply was lost),
        or every job this worker holds (on exit; counted as crashes if it ``crashed``)."""
        with self._lock:
            held = set() if all_jobs else set(self._held)
        return give_back_orphans(self, held, crashed)

    def sleep(self, seconds: float) -> None:
        threading.Event().wait(seconds)

    def title(self, text: str) -> None:
        prefix = os.environ.get("RESQUE_PROCLINE_PREFIX", "")
        setproctitle.setproctitle(f"{prefix}resque-{__version__}: {text}")

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

    @property
    def _idle(self) -> bool:
        return self._main is not None and self._main.idle

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        log.info("QUIT: finishing the current job, then exiting")
        self.shutdown()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.interrupt:
            log.warning("second %s: killing the job now", name)
            self.stop.kill = True
        else:
            log.info("%s: stopping the current job and exiting", name)
            self.stop.interrupt = True
            self.stop.interrupted_at = time.monotonic()
        self.shutdown()
        if self.mode == "inline" and self._main is not None and self._main.running_inline:
            if self.stop.kill:
                raise Interrupted(f"stopped by {name}")
            # The job gets the grace period; then the alarm interrupts it (executor.py).
            remaining = signal.getitimer(signal.ITIMER_REAL)[0]
            grace = max(self.stop.grace, 0.001)
            signal.setitimer(signal.ITIMER_REAL, min(remaining, grace) if remaining else grace)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        if any(p.busy for p in self.processors):
            log.info("USR1: killing the current job")
            self.stop.kill = True
        else:
            log.info("USR1: no job is running")

    def _on_pause(self, signum: int, frame: FrameType | None) -> None:
        if not self.paused:
            self.resque.events.trigger("before_pause", self)
            log.info("USR2: paused")
        self.paused = True
        if self._idle:
            raise Wake

    def _on_resume(self, signum: int, frame: FrameType | None) -> None:
        if self.paused:
            self.resque.events.trigger("after_pause", self)
            log.info("CONT: resumed")
        self.paused = False
        if self._idle:
            raise Wake

    def shutdown(self) -> None:
        """Finish the current jobs, then exit (QUIT)."""
        self.shutting_down = True
        if self._idle and threading.current_thread() is threading.main_thread():
            raise Wake

    def _command(self, command: str) -> None:
        """A ``pyresque ctl`` command, from the heartbeat thread: deliver it as a signal."""
        sig = COMMANDS.get(command)
        if sig is None:
            log.warning("ignoring unknown control command %r", command)
        else:
            os.kill(self.pid, sig)
