"""A job child process, seen from both ends: how it is started (its signals, dying
with its parent, the pipes of its siblings closed), the framed messages on its
pipes, and the parent's handle on it.

Kept free of the Redis client and of asyncio, because fork mode's zygote imports
it, and every megabyte there makes each fork slower (zygote.py).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import struct
import sys
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyresque.exceptions import Interrupted
from pyresque.executors.sched import short_slice
from pyresque.protocol import strict_json

if TYPE_CHECKING:
    from pyresque.jobs.job import Job
    from pyresque.jobs.perform import Outcome

HEADER = struct.Struct(">I")  # every message is a 4-byte length, then that many bytes
_PR_SET_PDEATHSIG = 1

# Prefork processors spawn children from several threads. A child must not keep
# the pipe ends of its siblings open (a sibling would then never see end of file),
# so spawning is serialised and each new child closes every pipe fd listed here.
SPAWN_LOCK = threading.Lock()
PARENT_FDS: set[int] = set()

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
    if status < 0:
        return f"Child process pid {pid} died; its exit status is unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"Child process received unhandled signal pid {pid} {name} (signal {sig})"
    return f"Job exited with exit code {os.waitstatus_to_exitcode(status)}"


#: A job child told to stop (TERM) is told again this often while its job runs on.
RETERM = 0.5
_job_runs = [False]  # whether a job runs in this child (``job_runs``)


def job_runs(runs: bool) -> None:
    """A job starts (True) or has ended (False) in this child: while one runs, a TERM
    is raised in it again every RETERM seconds until it ends."""
    _job_runs[0] = runs
    if not runs:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_job(perform: Callable[..., Outcome], job: Job, outcomes: int) -> Outcome:
    """``perform(job)`` in a job child, told again of a TERM while it runs (not in its
    failure hooks: ``ended``). A job that failed says so on ``outcomes`` before its
    hooks run (``ENDED``)."""
    job_runs(True)
    try:
        return perform(job, ended=lambda failed: _ended(outcomes, failed))
    finally:
        job_runs(False)


def _ended(outcomes: int, failed: Outcome) -> None:
    """The job failed; its hooks run next: no TERM repeats for them, and the worker gets
    the failure now, so that it records it, once, if it must kill this child in them."""
    job_runs(False)
    send(outcomes, ENDED + failed.encode())


def _raise_interrupted(signum: int, frame: object) -> None:
    """TERM from the parent, and its repeats (SIGALRM). Raised wherever the interpreter
    is: in a finalizer or a gc callback (the collection of an object, the worker's or
    the job's) it is swallowed, and the job would run on until the worker's KILL, its
    grace later: so again while the job runs."""
    if _job_runs[0]:
        signal.signal(signal.SIGALRM, _raise_interrupted)  # (before a TERM: the job's own)
        signal.setitimer(signal.ITIMER_REAL, RETERM)
    elif signum == signal.SIGALRM:
        return  # a repeat after the job ended: nothing to stop
    raise Interrupted("stopped by signal SIGTERM")


def child_signals() -> None:
    """The parent decides what Ctrl-C, QUIT and USR1/2 mean; TERM from the parent
    interrupts the job so its ``finally`` blocks run."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


def close_inherited() -> None:
    """In a new child: close the parent's pipe ends to the other children."""
    for fd in list(PARENT_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    PARENT_FDS.clear()


def fork_child(
    body: Callable[[int, int], None], close: tuple[int, ...] = ()
) -> tuple[int, int, int]:
    """Fork a job child. It closes ``close`` and the pipes of its siblings, dies with
    this process, takes the job child's signals and a short scheduler slice (sched.py),
    runs ``body(jobs, outcomes)`` (the read end of its job pipe, the write end of its
    outcome pipe) and exits: 1 if ``body`` raised, a dirty exit. Returns its pid, the
    write end of its job pipe and the read end of its outcome pipe."""
    out_reader, out_writer = os.pipe()
    job_reader, job_writer = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            close_inherited()
            for fd in (*close, out_reader, job_writer):
                os.close(fd)
            die_with_parent(parent)
            child_signals()
            short_slice()  # its wake-up as the job is written preempts what runs (sched.py)
            body(job_reader, out_writer)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(out_writer)
    os.close(job_reader)
    return pid, job_writer, out_reader


def unread(fd: int) -> int:
    """Bytes written to the pipe ``fd`` (either end) and not read yet: a child that died
    with some of its job message unread never started that job, which then goes back to
    its queue instead of failing (forking.watch). The child says nothing as it takes the
    job: a message then woke the worker just as the job started, competing with it for
    a CPU."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder)


def job_message(queue: str, payload: str | bytes, checkpointed: str | None) -> bytes:
    """What the worker sends a child for a job: its queue, its payload and, for a
    resumable job with a checkpoint, the checkpoint's JSON after a NUL (no JSON text
    holds one)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    message = queue.encode() + b"\n" + raw
    return message if checkpointed is None else message + b"\0" + checkpointed.encode()


def read_job_message(message: bytes) -> tuple[str, bytes, Any]:
    """The queue, the raw payload and the checkpointed state (or None) of a job message."""
    queue, _, rest = message.partition(b"\n")
    raw, _, state = rest.partition(b"\0")
    return queue.decode(), raw, strict_json.loads(state) if state else None


#: The first byte of a job's report (progress, checkpoint) on the outcome pipe; an
#: outcome is a JSON object.
REPORT = b"\x01"
#: The first byte of a failed job's failure, sent before its ``on_failure`` hooks run
#: (``run_job``): from then on the worker bounds the hooks, not the job (forking.watch).
ENDED = b"\x02"


def reporter(fd: int) -> Callable[[str, str], None]:
    """A job's ``reporter`` in a child: each report goes to the worker on ``fd``."""
    lock = threading.Lock()  # a job may report from several threads

    def report(kind: str, text: str) -> None:
        with lock:
            send(fd, REPORT + kind.encode() + b"\n" + text.encode())

    return report


def read_report(message: bytes) -> tuple[str, str]:
    """The kind and the JSON text of a report message."""
    kind, _, text = message[1:].partition(b"\n")
    return kind.decode(errors="replace"), text.decode(errors="replace")


def send(fd: int, data: bytes) -> None:
    data = HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def receive(fd: int) -> bytes | None:
    """One message, or None at end of file (blocking; used by the child)."""
    header = _read_exact(fd, HEADER.size)
    return None if header is None else _read_exact(fd, HEADER.unpack(header)[0])


def _read_exact(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@dataclass
class Child:
    """A child process and the pipes to talk to it. ``waiter`` learns its wait status
    once it exits: ``os.waitpid`` for our own children, the zygote for its."""

    pid: int
    pidfd: int
    reader: int  # outcomes from the child
    writer: int = -1  # jobs to the child
    jobs: int = 0
    waiter: Callable[[int], int] | None = None

    def wait(self) -> int:
        """Reap the child (it has exited); its wait status."""
        return self.waiter(self.pid) if self.waiter else os.waitpid(self.pid, 0)[1]

    def close(self) -> None:
        for fd in (self.pidfd, self.reader, self.writer):
            if fd >= 0:
                os.close(fd)
                PARENT_FDS.discard(fd)
        self.pidfd = self.reader = self.writer = -1
