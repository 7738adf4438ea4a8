"""What every benchmark job does, for every system alike: record that it ran.

A job's only work is one ``os.write`` of a fixed-width line, ``time.time()`` as
``"%17.6f\\n"``, to the results file named by ``BENCH_RESULTS_FILE``, on a file
descriptor opened with ``O_WRONLY | O_APPEND | O_CREAT``. No Redis traffic: the
measuring apparatus costs every system the same few microseconds. Appends of
fewer than PIPE_BUF bytes to a local file are atomic, so every worker process
(and forked child) of every system writes to the same file, and the measuring
process counts the jobs (file size / ``LINE``) and reads their time stamps.

The 10 ms job sleeps first (``time.sleep`` or ``asyncio.sleep``), then records.
The pickup-latency job records too: its record is its first step, so the time
in it is when the job started.

The descriptor is opened lazily, once per process (keyed by pid): a forked child
opens its own on its first job, whether or not its parent had opened one (an
inherited descriptor would do as well, O_APPEND being shared safely, but a new
one needs no check that the inherited one is still open on the same file).
"""

from __future__ import annotations

import asyncio
import os
import time

RESULTS_VAR = "BENCH_RESULTS_FILE"
LINE = 18  # bytes per record: f"{time.time():17.6f}\n"
SLEEP = 0.010  # the I/O-bound job's sleep

_fd: tuple[int, int] | None = None  # (pid, descriptor) of this process


def _descriptor() -> int:
    global _fd
    pid = os.getpid()
    if _fd is None or _fd[0] != pid:
        # No lock: two threads racing here both open, and one descriptor is left unused.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        _fd = (pid, os.open(os.environ[RESULTS_VAR], flags, 0o644))
    return _fd[1]


# --- the jobs' bodies (sync and async) ---------------------------------------------


def record() -> None:
    """The no-op job's body: append this moment to the results file."""
    os.write(_descriptor(), f"{time.time():17.6f}\n".encode())


def sleep_then_record() -> None:
    """The I/O-bound job's body: 10 ms of waiting, then the record."""
    time.sleep(SLEEP)
    record()


def stamp() -> None:
    """The pickup-latency job's body: the record is its first step, so it is its start."""
    record()


async def arecord() -> None:
    record()  # a microsecond-scale local write: no need to leave the event loop


async def asleep_then_record() -> None:
    await asyncio.sleep(SLEEP)
    record()


async def astamp() -> None:
    record()


# --- the measuring side ------------------------------------------------------------


def reset(path: str) -> None:
    """Empty the results file (create it if need be) before a measurement."""
    with open(path, "wb"):
        pass


def count(path: str) -> int:
    """How many jobs have recorded so far."""
    try:
        return os.stat(path).st_size // LINE
    except FileNotFoundError:
        return 0


def times(path: str, start: int = 0) -> list[float]:
    """The time stamps of the records from the ``start``-th on, in file order."""
    with open(path, "rb") as f:
        f.seek(start * LINE)
        data = f.read()
    whole = len(data) // LINE * LINE
    return [float(data[i : i + LINE]) for i in range(0, whole, LINE)]


def wait(path: str, at_least: int, timeout: float, poll: float = 0.0005) -> bool:
    """Poll until ``at_least`` jobs have recorded; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while count(path) < at_least:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True
