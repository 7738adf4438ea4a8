"""Executors that run jobs in child processes, so a crash or a leak cannot hurt the worker.

* ``ForkExecutor`` (Resque's default): one child per job, forked ahead of time
  by the zygote (zygote.py). The parent keeps every Redis write; the child only
  runs the job and reports its outcome through a pipe, so it never opens a
  Redis connection of its own.
* ``PreforkExecutor``: one long-lived child that runs job after job, recycled
  after N jobs or X MB, for isolation without paying a fork per job.

Either way the parent watches the child: a timeout, a TERM or a cancel
(``Resque.cancel``) sends the child TERM (the job sees ``Interrupted`` and its
``finally`` blocks run), then KILL after the grace period; a child that dies
without reporting is a dirty exit. What the job reports meanwhile (progress,
checkpoints) comes on the outcome pipe too and goes to the job's ``reporter``.
A lost lease (``Stop.lease_lost``) KILLs the child at once: the job goes back
to its queue, before any other worker may recover it.
"""

from __future__ import annotations

import math
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence

from pyresque.exceptions import DirtyExit, JobTimeout, WorkerBroken
from pyresque.executors.base import Showing, Started, Stop, no_op
from pyresque.executors.child import (
    ENDED,
    HEADER,
    PARENT_FDS,
    REPORT,
    SPAWN_LOCK,
    Child,
    describe_exit,
    fork_child,
    job_message,
    read_job_message,
    read_report,
    receive,
    reporter,
    run_job,
    send,
    unread,
)
from pyresque.executors.interrupts import HookBound, fail_bounded
from pyresque.executors.zygote import Zygote
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job, Registry, registry
from pyresque.jobs.perform import Outcome
from pyresque.middleware.hooks import Performer
from pyresque.protocol.payload import Payload, dumps


def spawn(body: Callable[[int, int], None]) -> Child:
    """Fork a child that runs ``body(jobs, outcomes)`` and exits (child.fork_child)."""
    with SPAWN_LOCK:
        pid, job_writer, out_reader = fork_child(body)
        child = Child(pid, os.pidfd_open(pid), out_reader, job_writer)
        PARENT_FDS.update((child.pidfd, out_reader, job_writer))
    return child


def watch(
    child: Child,
    job: Job,
    timeout: float | None,
    stop: Stop,
    events: Events,
    showing: Showing | None = None,
) -> Outcome:
    """Wait for the child to report ``job``'s outcome (or die), enforcing the timeout and
    the worker's stop requests, and ask for ``showing``'s write once due. A job that
    failed says so before its hooks run (child.ENDED): from then on they get their bound
    (interrupts.py) instead of its timeout, and the job ends with that failure however
    the child ends. Returns the outcome; ``child.pid`` is 0 if the child exited (and was
    reaped)."""
    started = time.monotonic()
    buffer = bytearray()
    reason = ""  # why we stopped the child: interrupted, timeout, cancelled, hooks or killed
    hooks: HookBound | None = None  # the failed job's on_failure hooks, running
    message: bytes | None = None
    term_at: float | None = None
    status: int | None = None
    in_main = stop.wakeup_fd >= 0 and _is_main_thread()
    watched = [child.reader, child.pidfd] + ([stop.wakeup_fd] if in_main else [])
    began = True  # the child took the job: none of it was left in its pipe (child.unread)

    def next_message() -> bytes | None:
        nonlocal hooks
        while (message := _message(buffer)) is not None:
            if message[:1] == REPORT:
                if job.reporter is not None:
                    job.reporter(*read_report(message))
            elif message[:1] == ENDED:
                hooks = HookBound(job, Outcome.decode(message[1:]), timeout, stop)
            else:
                return message
        return None

    while True:
        now = time.monotonic()
        deadlines = [now + 0.1] if not in_main else []  # other threads poll the stop flags
        if timeout and term_at is None and hooks is None:
            deadlines.append(started + timeout)
        if hooks is not None and term_at is None:
            deadlines.append(hooks.deadline())
        if term_at is not None:
            deadlines.append(term_at + stop.grace)
        if stop.lease_deadline < math.inf:
            deadlines.append(stop.lease_deadline)  # moved on by each renewal meanwhile
        if showing is not None:
            deadlines.append(showing.due)
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        ready, _, _ = select.select(watched, [], [], wait)
        if child.reader in ready:
            chunk = os.read(child.reader, 65536)
            buffer += chunk
            if not chunk:
                watched.remove(child.reader)
            message = next_message()  # before the checks below: it may have ended
            if message is not None:
                break
        if child.pidfd in ready:
            began = unread(child.writer) == 0  # read before its pipe is closed below
            status = child.wait()
            buffer += _read_available(child.reader)  # what it wrote before dying
            break
        if in_main and stop.wakeup_fd in ready:
            _drain(stop.wakeup_fd)
        now = time.monotonic()
        if showing is not None and now >= showing.due:
            showing.show()
            showing = None
        if stop.lease_lost(now):
            reason = "interrupted"
            _kill(child.pid, signal.SIGKILL)
        elif stop.kill or (term_at is not None and now >= term_at + stop.grace):
            reason = reason or "killed"
            _kill(child.pid, signal.SIGKILL)
            stop.kill = False
        elif term_at is None and stop.interrupt:
            reason, term_at = "interrupted", now
            _kill(child.pid, signal.SIGTERM)
        elif term_at is None and hooks is not None:
            if hooks.overdue(now):  # (a cancel, as in-process, leaves them alone)
                reason, term_at = "hooks", now
                _kill(child.pid, signal.SIGTERM)
        elif term_at is None and job.cancel_requested:
            reason, term_at = "cancelled", now
            _kill(child.pid, signal.SIGTERM)
        elif term_at is None and timeout and now >= started + timeout:
            reason, term_at = "timeout", now
            _kill(child.pid, signal.SIGTERM)
    if status is not None:
        child.close()
        dead_pid, child.pid = child.pid, 0
    message = message if status is None else next_message()
    if hooks is not None:  # it failed, and said so: its end after that is its failure's
        return hooks.failed if message is None else Outcome.decode(message)
    if reason == "timeout":
        exc = JobTimeout(f"job ran longer than its timeout of {timeout} s")
        return fail_bounded(job, exc, events, timeout, stop)
    if message is not None:
        outcome = Outcome.decode(message)
        if outcome.kind != "interrupted" or reason == "interrupted":
            return outcome  # a job that ended before a cancel reached it keeps its outcome
    if reason in ("interrupted", "cancelled"):
        return Outcome(reason)
    assert status is not None
    if not began and not reason:  # it died before taking the job (killed while waiting)
        return Outcome("unstarted")
    # A failure the child could not report itself: its hooks run here, in the worker.
    return fail_bounded(job, DirtyExit(describe_exit(dead_pid, status)), events, timeout, stop)


def _job_message(job: Job) -> bytes:
    """The job's message to its child, with the payload's bytes as claimed when nothing
    may have changed it since (``Job.raw_payload``): encoded again, it cost ~15 µs
    (40 on a busy machine), run cold on the way to the job's first line."""
    payload = job.raw_payload if job.raw_payload is not None else job.payload.encode()
    return job_message(job.queue_name, payload, _checkpointed(job))


def _checkpointed(job: Job) -> str | None:
    """The checkpoint a job starts from, as the JSON its child decodes."""
    return None if job.checkpointed is None else dumps(job.checkpointed)


def _read_available(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def _message(buffer: bytearray) -> bytes | None:
    """Take one complete message off the front of ``buffer``, if there is one."""
    if len(buffer) < HEADER.size:
        return None
    size = HEADER.unpack(buffer[: HEADER.size])[0]
    if len(buffer) < HEADER.size + size:
        return None
    message = bytes(buffer[HEADER.size : HEADER.size + size])
    del buffer[: HEADER.size + size]
    return message


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class ForkExecutor:
    """One child process per job (Resque's model), forked ahead of its job by the
    zygote (zygote.py), a small process that imported only the application."""

    name = "fork"
    runs_in_thread = False

    def __init__(
        self,
        events: Events,
        app: tuple[str, ...] = (),
        jobs: Registry = registry,
        middleware: Sequence[object] = (),
    ) -> None:
        self.events = events
        self.zygote = Zygote(app, Performer(events, middleware), jobs)

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        if job.cancel_requested:  # cancelled before it started: no child runs it
            return Outcome("cancelled")
        message = _job_message(job)
        while True:
            child = self.zygote.take()
            try:
                send(child.writer, message)
                break
            except BrokenPipeError:  # it died while waiting (killed from outside): the next
                self.zygote.done(child.pid)
                child.close()
                self.zygote.replace()
        showing = started()
        try:
            return watch(child, job, timeout, stop, self.events, showing)
        except BaseException:
            if child.pid:  # past an error its state is unknown: it must not run on
                _kill(child.pid, signal.SIGKILL)
            raise
        finally:
            if child.pid:  # it reported its outcome and is exiting; the zygote reaps it
                self.zygote.done(child.pid)
                child.close()
            self.zygote.replace()  # forked now, not while this job started (zygote.py)
            self.zygote.collect()  # an earlier successor's ready message, off the next job's way

    def cancel(self, job: Job, stop: Stop) -> None:
        stop.wake()  # watch() sends the child TERM, then KILL after the grace period

    def start(self) -> None:
        self.zygote.start()

    def close(self) -> None:
        self.zygote.close()


class PreforkExecutor:
    """A long-lived child that runs one job after another, replaced after
    ``max_jobs`` jobs or once its peak memory passes ``max_memory_mb`` (0: no limit),
    after a crash, a timeout or a kill."""

    name = "prefork"
    runs_in_thread = False

    def __init__(
        self,
        events: Events,
        max_jobs: int = 1000,
        max_memory_mb: int = 0,
        jobs: Registry = registry,
        middleware: Sequence[object] = (),
    ) -> None:
        self.events = events
        self.perform = Performer(events, middleware)
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.registry = jobs
        self.child: Child | None = None

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        if job.cancel_requested:  # cancelled before it started: no child runs it
            return Outcome("cancelled")
        child = self._hand_over(_job_message(job))
        showing = started()
        try:
            outcome = watch(child, job, timeout, stop, self.events, showing)
        except BaseException:
            self._discard(child)  # in an unknown state: a new one next time
            raise
        if not child.pid:  # it died (crash, timeout, kill): a new one next time
            self.child = None
            return outcome
        child.jobs += 1
        too_big = self.max_memory_mb and outcome.rss_mb > self.max_memory_mb
        if child.jobs >= self.max_jobs or too_big:
            self._retire()
        return outcome

    def _child_loop(self, jobs: int, outcomes: int) -> None:
        report = reporter(outcomes)  # one for the child's jobs, made before the first
        while (message := receive(jobs)) is not None:
            queue, raw, checkpointed = read_job_message(message)
            payload = Payload.decode(raw)
            job = self.registry.get(payload.class_name)(payload, queue)
            job.checkpointed, job.reporter = checkpointed, report
            self.events.trigger("after_fork", job)
            outcome = run_job(self.perform, job, outcomes)
            outcome.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            send(outcomes, outcome.encode())

    def _hand_over(self, message: bytes) -> Child:
        """Send the job to the child, replacing one that died while it waited (killed, or
        crashed between jobs). Children that keep dying before a job are the worker's
        problem, not the job's."""
        for _ in range(3):
            self.start()
            child = self.child
            assert child is not None
            try:
                send(child.writer, message)
                return child
            except BrokenPipeError:
                self._discard(child)
        raise WorkerBroken("prefork children keep dying before they can take a job")

    def _discard(self, child: Child) -> None:
        """Kill and reap a child whose state is unknown (dead, or past an error)."""
        if child.pid:
            _kill(child.pid, signal.SIGKILL)
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
        child.close()
        if self.child is child:
            self.child = None

    def cancel(self, job: Job, stop: Stop) -> None:
        pass  # watch() (in a processor thread: it polls) sends TERM, then KILL after the grace

    def start(self) -> None:
        self.child = self.child or spawn(self._child_loop)

    def _retire(self) -> None:
        """Close the child's job pipe: it finishes its loop and exits; reap it."""
        if self.child is None:
            return
        child, self.child = self.child, None
        os.close(child.writer)
        PARENT_FDS.discard(child.writer)
        child.writer = -1
        if not select.select([child.pidfd], [], [], 5.0)[0]:
            _kill(child.pid, signal.SIGKILL)  # it did not finish its loop in time
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass
        child.close()

    def close(self) -> None:
        self._retire()
