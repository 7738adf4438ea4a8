"""A worker's signals, Resque's: QUIT finishes the current job then exits; TERM/INT
stop the running jobs (TERM, a grace period, then KILL), give them back to their
queues and exit, and a second TERM kills at once; USR1 kills the current job and
goes on; USR2 pauses; CONT resumes.

The handlers only change the worker's state (``stop``, ``paused``, ``shutting_down``)
and raise ``Wake`` to cut an idle wait short: the processors and executors act on
that state, so a handler never runs job code or Redis calls.

The control commands (``pyresque ctl``, read by the heartbeat thread) arrive as the
same signals, but for ``pause`` and ``resume``, which must keep their order.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

from pyresque.client.resque import Resque
from pyresque.exceptions import Interrupted
from pyresque.executors.base import Stop
from pyresque.protocol.commands import COMMANDS, cancelled_id
from pyresque.worker.running_jobs import RunningJobs

log = logging.getLogger("pyresque.worker")

#: Brings a ``pause``/``resume`` command to the main thread. SIGURG: ignored by default
#: and sent by nobody else to a worker (Go's runtime picked it for the same reasons).
CONTROL_SIGNAL = signal.SIGURG


class Wake(Exception):
    """Raised by a signal handler to end an idle wait of the main-thread processor at once."""


class Running(Protocol):
    """What the handlers read of a processor (processor.py)."""

    idle: bool  # waiting for work in the main thread
    running_inline: bool  # running a job in this thread
    busy: bool  # running a job


class Signals:
    """Resque's signal handlers, mixed into ``Worker``, which sets these attributes."""

    resque: Resque
    mode: str
    stop: Stop
    paused: bool
    shutting_down: bool
    want_paused: bool  # what the latest USR2/CONT or pause/resume command asked for
    pause_source: str  # who asked, for the log
    _settling: bool  # _settle_pause is running (a nested handler leaves it to the outer)
    processors: Sequence[Running]
    running_jobs: RunningJobs
    _main: Running | None  # the processor of the main thread (fork and inline modes)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread; stop with shutdown() instead
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self.stop.wakeup_fd, self.stop.wakeup_writer = read_fd, write_fd
        handlers = {
            signal.SIGQUIT: self._on_quit,
            signal.SIGTERM: self._on_term,
            signal.SIGINT: self._on_term,
            signal.SIGUSR1: self._on_usr1,
            signal.SIGUSR2: self._on_pause,
            signal.SIGCONT: self._on_resume,
            CONTROL_SIGNAL: self._on_control,
        }
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

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
            # The job gets the grace period; then the alarm interrupts it (InlineExecutor).
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
        self.want_paused, self.pause_source = True, "USR2"
        self._settle_pause()
        self._wake_idle()

    def _on_resume(self, signum: int, frame: FrameType | None) -> None:
        self.want_paused, self.pause_source = False, "CONT"
        self._settle_pause()
        self._wake_idle()

    def _on_control(self, signum: int, frame: FrameType | None) -> None:
        """``ctl pause``/``ctl resume``: the heartbeat thread set ``want_paused``, then
        sent CONTROL_SIGNAL to bring the change here (_request_pause)."""
        self._settle_pause()
        self._wake_idle()

    def _command(self, command: str) -> None:
        """A ``pyresque ctl`` command, from the heartbeat thread: deliver it as its signal;
        ``cancel <id>`` stops that job if it runs here."""
        job_id = cancelled_id(command)
        if job_id is not None:
            self.running_jobs.cancel(job_id)
        elif command in ("pause", "resume"):
            self._request_pause(command == "pause")
        elif command in COMMANDS:
            os.kill(os.getpid(), COMMANDS[command])
        else:
            log.warning("ignoring unknown control command %r", command)

    def _request_pause(self, paused: bool) -> None:
        """``pause``/``resume``: not sent as USR2 or CONT. CPython runs a handler at its
        next check, which may fall inside another handler (and it takes two pending
        signals in number order), so two signals sent back to back can act in either
        order: ``pause, resume`` could leave the worker paused.
        The latest request is the state to reach; the signal only brings it in."""
        self.want_paused, self.pause_source = paused, "ctl " + ("pause" if paused else "resume")
        os.kill(os.getpid(), CONTROL_SIGNAL)

    def _settle_pause(self) -> None:
        """Move ``paused`` to ``want_paused``, running the pause hooks. A handler that runs
        inside another one's hooks only updates ``want_paused``: the outer one loops until
        the state matches, so the last request wins whatever the nesting."""
        if self._settling:
            return
        self._settling = True
        try:
            while self.paused != self.want_paused:
                paused = self.want_paused
                self.paused = paused
                self.resque.events.trigger("before_pause" if paused else "after_pause", self)
                log.info("%s: %s", self.pause_source, "paused" if paused else "resumed")
        finally:
            self._settling = False
        if self.paused != self.want_paused:  # a request came after the loop's last look
            self._settle_pause()

    def shutdown(self) -> None:
        """Finish the current jobs, then exit (QUIT)."""
        self.shutting_down = True
        if threading.current_thread() is threading.main_thread():
            self._wake_idle()

    def _wake_idle(self) -> None:
        """End the main processor's idle wait: raise ``Wake`` once per wait. The wait is
        no longer idle from here, so a second signal (a ``pause`` then a ``resume`` from
        the control list arrive together) cannot raise another ``Wake`` inside the first
        one's ``except Wake`` (landing.py's give-back of what may have landed would be
        skipped, and a landed job left on the landing list until recovery). Nor inside
        ``_settle_pause``: the outer handler wakes once the state is settled."""
        main = self._main
        if main is not None and main.idle and not self._settling:
            main.idle = False
            raise Wake
