"""``COUNT=N``: N worker processes under one supervising parent.

The supervisor forwards Resque's signals to every worker, restarts a worker that
dies (exits non-zero or by a signal), and exits once every worker has stopped:
after QUIT, TERM or INT, or on its own once the queues are drained (INTERVAL=0).

A worker killed by a signal from outside (KILL, TERM... not a crash signal such as
SEGV) is restarted at once, however young: what killed it (the OOM killer, an
operator, a chaos test) says nothing about the next one. Any other death (a non-zero
exit, a crash signal) may be a crash loop: the slot backs off, at once the first time,
then 0.5 s, 1 s, 2 s... up to 30 s, jittered; the count resets once a worker of that
slot has lived 10 s or is killed from outside. Each slot has its own count, so one
worker that cannot start never delays another.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

import setproctitle

from pyresque.executors.child import die_with_parent
from pyresque.protocol import backoff
from pyresque.version import __version__

log = logging.getLogger("pyresque.supervisor")

_FORWARDED = (
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
)
_STOPPING = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT)
#: Signals a process gets from its own faults, not from someone killing it.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
#: A worker up this long was healthy: its slot's crash-loop count starts again.
HEALTHY = 10.0
MAX_BACKOFF = 30.0


class Supervisor:
    """Runs ``count`` copies of ``run_worker`` (each in its own process) until told to stop."""

    def __init__(self, count: int, run_worker: Callable[[Callable[[], None]], None]) -> None:
        """``run_worker(ready)`` runs one worker and calls ``ready()`` once it works."""
        self.count = count
        self.run_worker = run_worker
        # pid -> (slot, ready pipe, monotonic start time)
        self.children: dict[int, tuple[int, int, float]] = {}
        self.stopping = False
        # Each slot keeps its own crash-loop count and restart time, so one worker that
        # cannot start never delays restarting another.
        self._failures = [0] * count
        self._restart_at: dict[int, float] = {}  # slot -> monotonic time

    def run(self) -> int:
        for sig in _FORWARDED:
            signal.signal(sig, self._forward)
        for slot in range(self.count):
            self._spawn(slot)
        while self.children or (self._restart_at and not self.stopping):
            self._restart_due()
            exited = self._wait()
            if exited is None:
                continue
            pid, status = exited
            slot, ready_fd, started = self.children.pop(pid)
            was_ready = _was_ready(ready_fd)
            if self.stopping or status == 0:  # told to stop, or drained (INTERVAL=0)
                continue
            self._restart(slot, pid, status, was_ready, time.monotonic() - started)
        return 0

    def _restart(self, slot: int, pid: int, status: int, was_ready: bool, uptime: float) -> None:
        """Schedule the slot's next worker: at once, or backing off from a crash loop."""
        from_outside = os.WIFSIGNALED(status) and os.WTERMSIG(status) not in _CRASH_SIGNALS
        if from_outside or uptime >= HEALTHY:
            self._failures[slot] = 0
        delay = 0.0
        if not from_outside:
            self._failures[slot] += 1
            if self._failures[slot] > 1:
                delay = backoff.delay(self._failures[slot] - 1, 0.5, MAX_BACKOFF)
        in_a_row = f" ({self._failures[slot]} in a row)" if self._failures[slot] > 1 else ""
        log.error(
            "worker %d %s after %.1f s%s%s; restarting it %s",
            pid,
            _describe(status),
            uptime,
            "" if was_ready else ", before it was ready",
            in_a_row,
            f"in {delay:.1f} s" if delay else "now",
        )
        self._restart_at[slot] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, when in list(self._restart_at.items()):
            if when <= now and not self.stopping:
                del self._restart_at[slot]
                self._spawn(slot)

    def _wait(self) -> tuple[int, int] | None:
        """The next child to exit; None when a restart falls due first."""
        if self.stopping:
            self._restart_at.clear()
        pending = list(self._restart_at.values())
        if not pending:
            try:
                return os.wait()
            except ChildProcessError:
                self.children.clear()
                return None
        deadline = min(pending)
        while time.monotonic() < deadline and not self.stopping:
            pid, status = os.waitpid(-1, os.WNOHANG) if self.children else (0, 0)
            if pid:
                return pid, status
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return None

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(ready_read)
                for sig in _FORWARDED:
                    signal.signal(sig, signal.SIG_DFL)
                die_with_parent(parent, signal.SIGTERM)
                self.run_worker(functools.partial(_report_ready, ready_write))
            except SystemExit as exc:  # the worker logged why
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker crashed")
                code = 1
            finally:
                os._exit(code)
        os.close(ready_write)
        self.children[pid] = (slot, ready_read, time.monotonic())
        self._title()

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if signum in _STOPPING:
            self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _title(self) -> None:
        pids = ",".join(str(p) for p in sorted(self.children))
        setproctitle.setproctitle(
            f"resque-{__version__}: Monitoring {len(self.children)} children: [{pids}]"
        )


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        return f"exited (killed by {name})"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def _was_ready(fd: int) -> bool:
    """Did the worker on this pipe report ready before it exited? (Closes the pipe.)"""
    try:
        return os.read(fd, 1) == b"1"
    finally:
        os.close(fd)


def _report_ready(fd: int) -> None:
    os.write(fd, b"1")
