"""A short scheduler slice for whatever waits for a job: it runs as soon as the job comes.

The worker wakes a waiting child by writing its job to the child's pipe, a "sync"
wake-up: Linux puts the child on the worker's CPU, behind the worker, and on a busy
machine behind the producer and Redis too, which still run just then (the ``BLMOVE``
reply has just been sent). With the default slice (1.4 ms on 2 CPUs) the child waited
for them: ~130 µs from the write to its ``read`` in ``benchmarks/pickup.py``, against
~45 µs on an idle machine. Linux's scheduler (EEVDF, 6.6 and later) gives a task a
deadline one slice after it becomes eligible, and from 6.12 a task may ask for a
shorter slice (``sched_attr.sched_runtime``): a woken task with an earlier deadline
than the running one preempts it. Its share of the CPU is unchanged; under contention
it is switched in and out more often.

The worker of an in-process mode (inline, threads, asyncio) asks for the same slice as
its executor starts (its threads inherit it; the asyncio loop's thread asks for its own):
woken by the job's reply, it is otherwise queued behind the producer and Redis the same
way (pickup.py A/B: inline 1.36x the floor against 1.45x, threads 1.38x against 1.41x).
A fork or prefork worker keeps the default: its wake-up only relays the job (measured:
fork no faster, prefork slower). Processes a job starts inherit the slice.

Python wraps neither ``sched_setattr`` nor ``sched_getattr``: they are called through
libc's ``syscall``, on the machines whose call numbers are known. Anywhere else, or
where the kernel refuses (a seccomp filter) or ignores the slice (before 6.12), the
child keeps the default: a hint, nothing depends on it.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

#: The slice asked for, in ns. Shorter than the default (0.7 ms times 1 + log2 of the
#: CPUs, up to 8: 1.4 ms on 2), so its wake-up preempts; long enough for a job's cold
#: start (~0.3 ms here): with the shortest, 0.1 ms, the worker took the CPU back midway.
SLICE_NS = 500_000

# struct sched_attr up to sched_period: size, policy, flags, nice, priority, runtime,
# deadline, period (the kernel's may be longer; the rest is optional).
_ATTR = struct.Struct("IIQiIQQQ")
_POLICY, _FLAGS, _RUNTIME = 1, 2, 5  # indexes in _ATTR
_RESET_ON_FORK = 0x01
_SCHED_OTHER = 0
#: (sched_getattr, sched_setattr) by machine
_CALLS = {"x86_64": (315, 314), "aarch64": (275, 274)}

# 64-bit processes only: a 32-bit one on a 64-bit kernel has other call numbers.
_linux64 = sys.platform.startswith("linux") and sys.maxsize > 2**32
_calls = _CALLS.get(os.uname().machine) if _linux64 else None
try:
    _syscall = ctypes.CDLL(None, use_errno=True).syscall if _calls else None
except (OSError, AttributeError):
    _syscall = None


# ``syscall`` is variadic: its arguments go as longs (a Python int would go as a C int,
# whose register's upper half the kernel would read as it finds it).
_long = ctypes.c_long


def slice_ns(pid: int = 0) -> int | None:
    """The slice of process ``pid`` (0: this one) in ns, or None where it is unknown."""
    attr = _get(pid)
    return None if attr is None else attr[_RUNTIME]


def short_slice(ns: int = SLICE_NS) -> bool:
    """Ask for a slice of ``ns`` for this process, keeping its policy, nice value and
    flags; only a SCHED_OTHER process asks (an operator who chose SCHED_BATCH or
    SCHED_IDLE for the worker wants its jobs to wait). Returns whether it is in force."""
    attr = _get(0)
    if attr is None or attr[_POLICY] != _SCHED_OTHER or _syscall is None or _calls is None:
        return False
    # Only SCHED_FLAG_RESET_ON_FORK is passed back: the others ask for more than a slice.
    attr[0], attr[_FLAGS], attr[_RUNTIME] = _ATTR.size, attr[_FLAGS] & _RESET_ON_FORK, ns
    if _syscall(_long(_calls[1]), _long(0), _ATTR.pack(*attr), _long(0)) != 0:
        return False  # refused (a seccomp filter, say): the default slice stays
    return slice_ns() == ns  # a kernel before 6.12 takes the call and ignores the slice


def _get(pid: int) -> list[int] | None:
    if _syscall is None or _calls is None:
        return None
    buffer = ctypes.create_string_buffer(_ATTR.size)
    if _syscall(_long(_calls[0]), _long(pid), buffer, _long(_ATTR.size), _long(0)) != 0:
        return None
    return list(_ATTR.unpack(buffer.raw))
