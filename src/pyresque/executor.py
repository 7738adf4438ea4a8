"""Executors: how a worker runs a job. The job itself does not change between them.

* ``ForkExecutor`` (Resque's default): one child process per job. The parent
  keeps every Redis write; the child only runs the job and reports its outcome
  through a pipe, so it never opens a Redis connection of its own.
* ``InlineExecutor`` (``FORK_PER_JOB=false``): the job runs in the worker process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from pyresque.events import Events
from pyresque.job import Job
from pyresque.perform import DirtyExit, Interrupted, JobTimeout, Outcome, notify_failure, perform

log = logging.getLogger("pyresque.worker")

_PR_SET_PDEATHSIG = 1


@dataclass
class Stop:
    """What the worker's signal handlers ask of the running job."""

    interrupt: bool = False  # TERM/INT: stop the job gracefully, then exit
    kill: bool = False  # USR1 or a second TERM: kill it now
    grace: float = 10.0  # seconds between TERM and KILL
    wakeup_fd: int = -1  # readable when a signal arrived

    def reset(self) -> None:
        self.kill = False


class Executor(Protocol):
    name: str

    def execute(self, job: Job, timeout: float | None, stop: Stop) -> Outcome: ...


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Linux: this child gets ``sig`` when its parent dies, so no orphan runs on after it
    (a job child would otherwise run a job that was already recovered)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def describe_exit(pid: int, status: int) -> str:
    """Resque's dirty-exit messages, for a signal or a non-zero exit code."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"Child process received unhandled signal pid {pid} {name} (signal {sig})"
    return f"Job exited with exit code {os.waitstatus_to_exitcode(status)}"


class ForkExecutor:
    name = "fork"

    def __init__(self, events: Events) -> None:
        self.events = events

    def execute(self, job: Job, timeout: float | None, stop: Stop) -> Outcome:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child
            os.close(read_fd)
            self._child(job, write_fd, parent)
        os.close(write_fd)
        try:
            return self._watch(job, pid, read_fd, timeout, stop)
        finally:
            os.close(read_fd)

    def _child(self, job: Job, write_fd: int, parent: int) -> None:
        code = 0
        try:
            die_with_parent(parent)
            # The parent decides what Ctrl-C and QUIT mean; TERM from the parent
            # interrupts the job so its `finally` blocks run.
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _raise_interrupted)
            signal.set_wakeup_fd(-1)
            self.events.trigger("after_fork", job)
            outcome = perform(job, self.events)
            data = outcome.encode()
            while data:
                data = data[os.write(write_fd, data) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def _watch(
        self, job: Job, pid: int, read_fd: int, timeout: float | None, stop: Stop
    ) -> Outcome:
        pidfd = os.pidfd_open(pid)
        started = time.monotonic()
        data = bytearray()
        status: int | None = None
        reason = ""  # why we stopped the child: interrupted, timeout or killed
        term_at: float | None = None
        watch = [read_fd, pidfd] + ([stop.wakeup_fd] if stop.wakeup_fd >= 0 else [])
        try:
            while status is None:
                now = time.monotonic()
                deadline = [started + timeout] if timeout and term_at is None else []
                if term_at is not None:
                    deadline.append(term_at + stop.grace)
                wait = max(0.0, min(deadline) - now) if deadline else None
                ready, _, _ = select.select(watch, [], [], wait)
                if read_fd in ready:
                    chunk = os.read(read_fd, 65536)
                    data += chunk
                    if not chunk:
                        watch.remove(read_fd)
                if pidfd in ready:
                    status = os.waitpid(pid, 0)[1]
                    break
                if stop.wakeup_fd in ready:
                    _drain(stop.wakeup_fd)
                now = time.monotonic()
                if stop.kill or (term_at is not None and now >= term_at + stop.grace):
                    reason = reason or "killed"
                    os.kill(pid, signal.SIGKILL)
                    stop.reset()
                elif term_at is None and stop.interrupt:
                    reason, term_at = "interrupted", now
                    os.kill(pid, signal.SIGTERM)
                elif term_at is None and timeout and now >= started + timeout:
                    reason, term_at = "timeout", now
                    os.kill(pid, signal.SIGTERM)
        finally:
            os.close(pidfd)
        while chunk := os.read(read_fd, 65536):
            data += chunk
        if reason == "timeout":
            return self._failed(job, JobTimeout(f"job ran longer than its timeout of {timeout} s"))
        if data:
            outcome = Outcome.decode(bytes(data))
            if outcome.kind != "interrupted" or reason == "interrupted":
                return outcome
        if reason == "interrupted":
            return Outcome("interrupted")
        assert status is not None
        return self._failed(job, DirtyExit(describe_exit(pid, status)))

    def _failed(self, job: Job, exc: Exception) -> Outcome:
        """A failure the child could not report itself: run the hooks here, in the parent."""
        notify_failure(job, exc, self.events)
        return Outcome.failed(exc)


class InlineExecutor:
    """Runs the job in the worker process.

    Timeouts and the TERM grace period use SIGALRM: when it fires, ``JobTimeout``
    (or ``Interrupted`` after a TERM) is raised inside the job. That stops Python
    code, including ``time.sleep`` and socket waits, but not a C extension that
    never returns to the interpreter; use fork mode for jobs that must be killable."""

    name = "inline"

    def __init__(self, events: Events) -> None:
        self.events = events

    def execute(self, job: Job, timeout: float | None, stop: Stop) -> Outcome:
        def on_alarm(signum: int, frame: object) -> None:
            if stop.interrupt:
                raise Interrupted("the worker was told to stop and the grace period ended")
            raise JobTimeout(f"job ran longer than its timeout of {timeout} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return perform(job, self.events)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


EXECUTORS: dict[str, type[ForkExecutor] | type[InlineExecutor]] = {
    "fork": ForkExecutor,
    "inline": InlineExecutor,
}


def make_executor(mode: str, events: Events) -> Executor:
    try:
        return EXECUTORS[mode](events)
    except KeyError:
        raise ValueError(
            f"unknown execution mode {mode!r}; choose one of {', '.join(EXECUTORS)}"
        ) from None


__all__ = ["DirtyExit", "Executor", "ForkExecutor", "InlineExecutor", "Stop", "make_executor"]
