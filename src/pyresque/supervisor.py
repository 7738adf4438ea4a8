"""``COUNT=N``: N worker processes under one supervising parent.

The supervisor forwards Resque's signals to every worker, restarts a worker that
crashes (exits non-zero or by a signal; with backoff, so a worker that cannot
start does not spin), and exits once every worker has stopped: after QUIT, TERM
or INT, or on its own once the queues are drained (INTERVAL=0).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

import setproctitle

from pyresque import __version__
from pyresque.forking import die_with_parent

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

    def __init__(self, count: int, run_worker: Callable[[], None]) -> None:
        self.count = count
        self.run_worker = run_worker
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self._failures = 0

    def run(self) -> int:
        for sig in _FORWARDED:
            signal.signal(sig, self._forward)
        for _ in range(self.count):
            self._spawn()
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, time.monotonic())
            if self.stopping or status == 0:  # told to stop, or drained (INTERVAL=0)
                continue
            log.error("worker %d exited (status %d); restarting it", pid, status)
            self._failures = self._failures + 1 if time.monotonic() - started < 5 else 0
            time.sleep(min(30.0, 0.5 * 2 ** min(self._failures, 6)) if self._failures else 0)
            if not self.stopping:
                self._spawn()
        return 0

    def _spawn(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for sig in _FORWARDED:
                    signal.signal(sig, signal.SIG_DFL)
                die_with_parent(parent, signal.SIGTERM)
                self.run_worker()
            except BaseException:
                log.exception("worker crashed")
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = time.monotonic()
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
