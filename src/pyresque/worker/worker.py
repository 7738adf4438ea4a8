"""The worker: its life cycle (start, run its processors, stop), registration and
the lease, and what its processors share.

The loop that claims and runs jobs lives in processor.py; how a job runs lives in
the executors (executors/inprocess.py, executors/forking.py), chosen by the options
(options.py). A worker has one processor in fork and inline modes (in the main
thread, exactly like Resque) and N processors in threads, asyncio and prefork
modes. A background heartbeat keeps the worker's lease and recovers the jobs of
dead workers (recovery.py). Signals are Resque's (signals.py); ``pyresque ctl``
reaches a worker on any host by turning a command sent through Redis into the
same signal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import redis

from pyresque.client.resque import Resque
from pyresque.exceptions import Interrupted, WorkerBroken
from pyresque.executors.base import Stop
from pyresque.middleware.worker_chain import WorkerChain
from pyresque.protocol import scripts, sentinel
from pyresque.protocol.backoff import Backoff
from pyresque.protocol.connection import REDIS_DOWN, dedicated, lease_client
from pyresque.protocol.keys import Keys
from pyresque.protocol.reports import ReportWriter
from pyresque.protocol.running import RunningMarker
from pyresque.protocol.supervision import Supervised
from pyresque.scheduling import cron
from pyresque.scheduling.scheduler import Scheduler
from pyresque.worker.failover import Failover
from pyresque.worker.foreign_prune import worker_keys
from pyresque.worker.handoff import Handoff
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.options import WorkerOptions, make_executors
from pyresque.worker.processor import Processor
from pyresque.worker.procline import Procline
from pyresque.worker.queue_list import QueueList, Resolution
from pyresque.worker.recovery import Recovery, started_text
from pyresque.worker.running_jobs import RunningJobs
from pyresque.worker.signals import Signals, Wake
from pyresque.worker.wake_wait import WakeWait
from pyresque.worker.watchdog import Watchdog

log = logging.getLogger("pyresque.worker")


class Worker(Signals):
    """One Resque worker process. ``work()`` runs until it is told to stop.

    ``middleware`` are this worker's own, after those registered with
    ``resque.middleware.add`` (middleware/chain.py): their worker-side methods run
    here, ``around_perform`` where the job runs, except in fork mode with ``app``
    modules, whose zygote sees only what those modules register."""

    processors: list[Processor]
    _main: Processor | None

    def __init__(
        self,
        resque: Resque,
        queues: str | list[str] | QueueList,
        options: WorkerOptions | None = None,
        on_ready: Callable[[], None] | None = None,
        *,
        middleware: Sequence[object] = (),
    ) -> None:
        self.resque = resque
        self._on_ready = on_ready  # called once registered and taking jobs (supervisor.py)
        self.options = options or WorkerOptions()
        self.queues = queues if isinstance(queues, QueueList) else QueueList.parse(queues)
        self.resolution = Resolution(self.queues)  # its processors' (queue_list.py)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._procline = Procline()
        self.id = f"{self.hostname}:{self.pid}:{self.queues.id_part}"
        self.lease_ms = int(self.options.lease_ttl * 1000)
        keys = self._keys = resque.keys
        self.recovery = Recovery(
            resque.redis, keys, resque.registry, self.options.max_crashes, self.id
        )
        # Retries, timeouts, unique locks, limits, history and the user's middleware
        # around each job (middleware/chain.py).
        self.middleware = WorkerChain(
            resque.redis,
            keys,
            resque.registry,
            self.id,
            self.release,
            resque.events,
            middleware,
            fork=self.options.mode == "fork",
        )
        self.history = self.middleware.history.buffer  # written by the heartbeat, once a second
        self.stop = Stop(grace=self.options.term_timeout)
        # The lease path's calls end within half the lease (connection.lease_client).
        self._lease_redis = lease_client(resque.redis, self.options.lease_ttl)
        policy = resque.durability
        self.failover = Failover(
            self.id, self.stop, self.options.lease_ttl, policy is not None, self.give_back_orphans
        )
        self.reports = ReportWriter(self._lease_redis, keys)  # progress, checkpoints
        self.running_jobs = RunningJobs(resque.redis, keys, self.reports, self.stop)
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
            on_renewed=self._renewed,
            on_marked=self.running_jobs.marked,  # sticky cancels (running_jobs.py)
            # Waits for commands (control_watch.py); not for a worker told not to block
            # (a proxy in front of Redis that refuses blocking commands): it reads them
            # at each beat.
            control_client=dedicated(resque.redis) if self.options.blocking else None,
            # A renewal's WAIT ends well inside the lease client's call timeout.
            durability=policy
            and replace(policy, timeout_ms=min(policy.timeout_ms, self.lease_ms // 10)),
            shards=lambda: self.shards() if keys.clustered else [],
        )
        self.running_marker = RunningMarker(
            self._lease_redis, keys, self.id, self.options.mark_after
        )
        self._watchdog = Supervised("watchdog", log, 0.1)
        self._lease_lost_logged = False
        self.exit_code = 0  # non-zero: the worker could not go on (``pyresque worker`` exits so)
        self.shutting_down = False
        self.paused = self.want_paused = self._settling = False
        self.pause_source = ""
        self.processed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._held: set[str] = set()  # claim tokens processors hold (claimed or claiming)
        self._landing = 0  # processors between a BLMOVE and its job's adoption (landing.py)
        self._processor_died: BaseException | None = None  # why a processor thread ended
        self.scheduler: Scheduler | None = None
        if self.options.with_scheduler:
            self.scheduler = Scheduler(resque, cron.schedules, retention=self.options.retention)
        executors = make_executors(self.options, resque.events, resque.registry, middleware)
        # Idle processors' waits on the wake lists, in groups of keys (wake_wait.py).
        self.waits = WakeWait(resque.redis, keys.prefix, bool(keys.clustered))
        self.processors = [Processor(self, e, i) for i, e in enumerate(executors)]
        # Timeouts, the TERM's grace and the lease for jobs in processor threads.
        self._timeouts = Watchdog(self.processors, self.stop)
        self.mode = executors[0].name
        # fork and inline run their one processor in the main thread, as Resque does.
        self._main = self.processors[0] if self.mode in ("fork", "inline") else None
        # Concurrent modes: one call claims for every free processor (handoff.py), unless
        # each lands its own (landing.py).
        several = self._main is None and len(self.processors) > 1
        self.handoff = Handoff() if several and not self.processors[0].lander.fast else None

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
                self.sleep(self._watchdog.call(self._timeouts.check))
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

    def _renewed(self, deadline: float) -> None:
        """After each renewal of the lease (the heartbeat thread)."""
        self.stop.lease_renewed(deadline)
        self.failover.after_beat()

    def _startup(self) -> None:
        self.title("Starting")
        sentinel.on_master_moved(self.resque.redis, self.failover.moved)
        if self.options.pidfile:
            with open(self.options.pidfile, "w") as f:
                f.write(f"{self.pid}\n")
        # The first beat registers us (workers set, started, lease) and reports dead workers:
        # recover them now, so even a burst worker that drains in a second does.
        self._with_redis(self.heartbeat.beat_and_recover)
        # A worker that died under our id (a container restarted: its hostname, pid 1)
        # left its jobs in flight on a lease that is ours now: nobody else recovers them.
        self._with_redis(lambda: self.give_back_orphans(all_jobs=True, crashed=True))
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
        self.reports.start()
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
        sentinel.on_master_moved(self.resque.redis, self.failover.moved, remove=True)
        if self.scheduler is not None:
            self.scheduler.stop()
        self.heartbeat.stop()
        self.running_marker.stop()
        self.reports.stop()
        self._lease_redis.close()
        for processor in self.processors:
            processor.close()
        self.waits.close()
        try:
            self.history.flush(self.resque.redis, self._keys)
        except redis.exceptions.RedisError as exc:
            log.warning("the last second's history counts are lost: %s", exc)
        try:
            self.give_back_orphans(all_jobs=True, crashed=crashed)  # never leave a job claimed
            for keys in [self._keys, *(self.shards() if self._keys.clustered else [])]:
                reap = worker_keys(keys, self.id)
                scripts.run(self.resque.redis, "reap", reap, [self.id, "1", "", ""])
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
        waits = Backoff(0.1, 10.0)
        while not self.shutting_down:
            try:
                step()
                return
            except REDIS_DOWN as exc:
                delay = waits.next()
                log.error("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                self.sleep(delay)

    # --- shared by the processors ---------------------------------------------

    def hold(self, token: str) -> str:
        """Note that a processor claims (or holds) the job of ``token``."""
        with self._lock:
            self._held.add(token)
        return token

    def release(self, token: str) -> None:
        with self._lock:
            self._held.discard(token)

    def working(self) -> bool:
        """Whether a processor runs a job."""
        return any(p.busy for p in self.processors)

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
        # A failover's pause (worker/failover.py) is logged as such.
        if not self._lease_lost_logged and time.monotonic() >= self.stop.held_until:
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

    def landing(self, change: int) -> None:
        """A processor starts (+1) or ends (-1) a BLMOVE and its job's adoption."""
        with self._lock:
            self._landing += change

    def give_back_orphans(self, all_jobs: bool = False, crashed: bool = False) -> int:
        """Give back in-flight jobs that no processor holds (claims whose reply was lost),
        or every job this worker holds (on exit; counted as crashes if it ``crashed``).
        The landing list's jobs too while no processor lands one (landing.py)."""
        with self._lock:
            held = set() if all_jobs else set(self._held)
            landing = not self._keys.clustered and (all_jobs or self._landing == 0)
            if landing:  # no processor lands a job meanwhile: the lock is held
                return self.recovery.give_back_orphans(self.id, held, crashed, landing)
        recoveries = [self.recovery]
        if self._keys.clustered:  # an in-flight hash in each slot of our queues
            recoveries = [self.recovery.on(shard) for shard in self.shards()]
        return sum(at.give_back_orphans(self.id, held, crashed) for at in recoveries)

    def shards(self) -> list[Keys]:
        """On Cluster, the keys of each slot our queues are in (keys.py)."""
        return self._keys.shards(self.processors[0].fetcher.resolved)

    def give_back_unreplicated(self) -> None:
        """Give back the jobs of claims the durability policy's replicas did not
        acknowledge (no processor holds them); if Redis is down, ``_redis_back`` will."""
        try:
            self.give_back_orphans()
        except REDIS_DOWN as exc:
            log.error("could not give back unreplicated claims yet (%s)", exc)

    def sleep(self, seconds: float) -> None:
        threading.Event().wait(seconds)

    def title(self, text: str) -> None:
        self._procline(text)
