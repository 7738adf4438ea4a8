"""Executors that run jobs in child processes, so a crash or a leak cannot hurt the worker.

* ``ForkExecutor`` (Resque's default): one child per job. The parent keeps every
  Redis write; the child only runs the job and reports its outcome through a
  pipe, so it never opens a Redis connection of its own.
* ``PreforkExecutor``: one long-lived child that runs job after job, recycled
  after N jobs or X MB, for isolation without paying a fork per job.

Either way the parent watches the child: a timeout or a TERM sends the child
TERM (the job sees ``Interrupted`` and its ``finally`` blocks run), then KILL
after the grace period; a child that dies without reporting is a dirty exit.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyresque.events import Events
from pyresque.executor import Started, Stop, no_op
from pyresque.job import Job, Registry, registry
from pyresque.payload import Payload
from pyresque.perform import DirtyExit, Interrupted, JobTimeout, Outcome, notify_failure, perform

_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct(">I")  # every message is a 4-byte length, then that many bytes

# Prefork processors spawn children from several threads. A child must not keep
# the pipe ends of its siblings open (a sibling would then never see end of file),
# so spawning is serialised and each new child closes every pipe fd listed here.
_SPAWN_LOCK = threading.Lock()
_PARENT_FDS: set[int] = set()

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Linux: this child gets ``sig`` when its parent dies, so no orphan runs on after it
    (a job child would otherwise run a job that was already recovered)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def describe_exit(pid: int, status: int) -> str:
    """Resque's dirty-exit messages, for a signal or a non-zero exit code."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"Child process received unhandled signal pid {pid} {name} (signal {sig})"
    return f"Job exited with exit code {os.waitstatus_to_exitcode(status)}"


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def _child_signals() -> None:
    """The parent decides what Ctrl-C, QUIT and USR1/2 mean; TERM from the parent
    interrupts the job so its ``finally`` blocks run."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.set_wakeup_fd(-1)


def _close_siblings() -> None:
    """In a new child: close the parent's pipe ends to the other children."""
    for fd in list(_PARENT_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _PARENT_FDS.clear()


def _send(fd: int, data: bytes) -> None:
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _receive(fd: int) -> bytes | None:
    """One message, or None at end of file (blocking; used by the child)."""
    header = _read_exact(fd, _HEADER.size)
    return None if header is None else _read_exact(fd, _HEADER.unpack(header)[0])


def _read_exact(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def spawn(body: Callable[[int, int], None], job_pipe: bool) -> Child:
    """Fork a child that runs ``body(jobs, outcomes)`` and exits: it reads jobs from
    ``jobs`` (with ``job_pipe``; -1 otherwise) and writes outcomes to ``outcomes``.
    Any exception makes it exit 1, which the parent reports as a dirty exit."""
    out_reader, out_writer = os.pipe()
    job_reader, job_writer = os.pipe() if job_pipe else (-1, -1)
    parent = os.getpid()
    with _SPAWN_LOCK:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _close_siblings()
                _close(out_reader, job_writer)
                die_with_parent(parent)
                _child_signals()
                body(job_reader, out_writer)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        _close(out_writer, job_reader)
        child = Child(pid, os.pidfd_open(pid), out_reader, job_writer)
        _PARENT_FDS.update(fd for fd in (child.pidfd, out_reader, job_writer) if fd >= 0)
    return child


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


@dataclass
class Child:
    """A child process and the pipes to talk to it."""

    pid: int
    pidfd: int
    reader: int  # outcomes from the child
    writer: int = -1  # jobs to the child (prefork)
    jobs: int = 0

    def close(self) -> None:
        for fd in (self.pidfd, self.reader, self.writer):
            if fd >= 0:
                os.close(fd)
                _PARENT_FDS.discard(fd)
        self.pidfd = self.reader = self.writer = -1


def watch(child: Child, job: Job, timeout: float | None, stop: Stop, events: Events) -> Outcome:
    """Wait for the child to report ``job``'s outcome (or die), enforcing the timeout and
    the worker's stop requests. Returns the outcome; ``child.pid`` is 0 if the child
    exited (and was reaped)."""
    started = time.monotonic()
    buffer = bytearray()
    reason = ""  # why we stopped the child: interrupted, timeout or killed
    term_at: float | None = None
    status: int | None = None
    in_main = stop.wakeup_fd >= 0 and _is_main_thread()
    watched = [child.reader, child.pidfd] + ([stop.wakeup_fd] if in_main else [])
    while True:
        message = _message(buffer)
        if message is not None:
            break
        now = time.monotonic()
        deadlines = [now + 0.1] if not in_main else []  # other threads poll the stop flags
        if timeout and term_at is None:
            deadlines.append(started + timeout)
        if term_at is not None:
            deadlines.append(term_at + stop.grace)
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        ready, _, _ = select.select(watched, [], [], wait)
        if child.reader in ready:
            chunk = os.read(child.reader, 65536)
            buffer += chunk
            if not chunk:
                watched.remove(child.reader)
        if child.pidfd in ready:
            status = os.waitpid(child.pid, 0)[1]
            buffer += _read_available(child.reader)  # what it wrote before dying
            break
        if in_main and stop.wakeup_fd in ready:
            _drain(stop.wakeup_fd)
        now = time.monotonic()
        if stop.kill or (term_at is not None and now >= term_at + stop.grace):
            reason = reason or "killed"
            _kill(child.pid, signal.SIGKILL)
            stop.kill = False
        elif term_at is None and stop.interrupt:
            reason, term_at = "interrupted", now
            _kill(child.pid, signal.SIGTERM)
        elif term_at is None and timeout and now >= started + timeout:
            reason, term_at = "timeout", now
            _kill(child.pid, signal.SIGTERM)
    if status is not None:
        child.close()
        dead_pid, child.pid = child.pid, 0
    if reason == "timeout":
        return _failed(job, JobTimeout(f"job ran longer than its timeout of {timeout} s"), events)
    message = message if status is None else _message(buffer)
    if message is not None:
        outcome = Outcome.decode(message)
        if outcome.kind != "interrupted" or reason == "interrupted":
            return outcome
    if reason == "interrupted":
        return Outcome("interrupted")
    assert status is not None
    return _failed(job, DirtyExit(describe_exit(dead_pid, status)), events)


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
    if len(buffer) < _HEADER.size:
        return None
    size = _HEADER.unpack(buffer[: _HEADER.size])[0]
    if len(buffer) < _HEADER.size + size:
        return None
    message = bytes(buffer[_HEADER.size : _HEADER.size + size])
    del buffer[: _HEADER.size + size]
    return message


def _failed(job: Job, exc: Exception, events: Events) -> Outcome:
    """A failure the child could not report itself: run the hooks here, in the parent."""
    notify_failure(job, exc, events)
    return Outcome.failed(exc)


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
    """One child process per job (Resque's model)."""

    name = "fork"
    runs_in_thread = False

    def __init__(self, events: Events) -> None:
        self.events = events

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        child = spawn(lambda jobs, outcomes: self._child(job, outcomes), job_pipe=False)
        started()
        outcome = watch(child, job, timeout, stop, self.events)
        if child.pid:  # reported, then exits: reap it
            os.waitpid(child.pid, 0)
            child.close()
        return outcome

    def _child(self, job: Job, outcomes: int) -> None:
        self.events.trigger("after_fork", job)
        _send(outcomes, perform(job, self.events).encode())

    def close(self) -> None:
        pass


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
    ) -> None:
        self.events = events
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.registry = jobs
        self.child: Child | None = None

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        child = self.child or spawn(self._child_loop, job_pipe=True)
        self.child = child
        _send(child.writer, job.queue_name.encode() + b"\n" + job.payload.encode().encode())
        started()
        outcome = watch(child, job, timeout, stop, self.events)
        if not child.pid:  # it died (crash, timeout, kill): a new one next time
            self.child = None
            return outcome
        child.jobs += 1
        too_big = self.max_memory_mb and outcome.rss_mb > self.max_memory_mb
        if child.jobs >= self.max_jobs or too_big:
            self._retire()
        return outcome

    def _child_loop(self, jobs: int, outcomes: int) -> None:
        while (message := _receive(jobs)) is not None:
            queue, _, raw = message.partition(b"\n")
            payload = Payload.decode(raw)
            job = self.registry.get(payload.class_name)(payload, queue.decode())
            self.events.trigger("after_fork", job)
            outcome = perform(job, self.events)
            outcome.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            _send(outcomes, outcome.encode())

    def _retire(self) -> None:
        """Close the child's job pipe: it finishes its loop and exits; reap it."""
        if self.child is None:
            return
        child, self.child = self.child, None
        os.close(child.writer)
        _PARENT_FDS.discard(child.writer)
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
