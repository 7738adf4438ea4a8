"""``COUNT=N``: N worker processes under one supervising parent.

The supervisor forwards Resque's signals to every worker, restarts a worker that
dies (exits non-zero or by a signal), and exits once every worker has stopped:
after QUIT, TERM or INT, or on its own once the queues are drained (INTERVAL=0).

A worker that was up and working (it reported ready) is restarted at once, however
young: what killed it (the OOM killer, an operator, a chaos test) says nothing
about the next one. A worker that dies before it is ready (bad configuration,
Redis unreachable, an import error) is restarted with a growing backoff, per
worker slot, so it never spins and never delays the others.
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

from pyresque import __version__
from pyresque.child import die_with_parent

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


class Supervisor:
    """Runs ``count`` copies of ``run_worker`` (each in its own process) until told to stop."""

    def __init__(self, count: int, run_worker: Callable[[Callable[[], None]], None]) -> None:
        """``run_worker(ready)`` runs one worker and calls ``ready()`` once it works."""
        self.count = count
        self.run_worker = run_worker
        self.children: dict[int, tuple[int, int]] = {}  # pid -> (slot, ready pipe)
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
            slot, ready_fd = self.children.pop(pid)
            was_ready = _was_ready(ready_fd)
            if self.stopping or status == 0:  # told to stop, or drained (INTERVAL=0)
                continue
            self._failures[slot] = 0 if was_ready else self._failures[slot] + 1
            delay = min(30.0, 0.5 * 2 ** min(self._failures[slot] - 1, 6)) if not was_ready else 0.0
            log.error("worker %d exited (status %d); restarting it in %.1f s", pid, status, delay)
            self._restart_at[slot] = time.monotonic() + delay
        return 0

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
            except BaseException:
                log.exception("worker crashed")
                code = 1
            finally:
                os._exit(code)
        os.close(ready_write)
        self.children[pid] = (slot, ready_read)
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


def _was_ready(fd: int) -> bool:
    """Did the worker on this pipe report ready before it exited? (Closes the pipe.)"""
    try:
        return os.read(fd, 1) == b"1"
    finally:
        os.close(fd)


def _report_ready(fd: int) -> None:
    os.write(fd, b"1")
