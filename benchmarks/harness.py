"""Process plumbing shared by the orchestrator and the measuring processes.

Every process a run starts carries ``BENCH_MARK=<id>`` in its environment, which
its descendants inherit (worker pools, forked job children, ...). After each
measurement the orchestrator SIGKILLs whatever still carries that measurement's
mark, so nothing outlives it, whatever a peer's worker does on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MARK_VAR = "BENCH_MARK"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn``: the child is SIGKILLed when the process that started it dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def start(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: str | Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with output appended to ``log``; it dies with us."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout if stdout is not None else out,
            stderr=out,
            preexec_fn=die_with_parent(),  # noqa: PLW1509  (no threads run yet in our callers)
        )


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return needle in data.split(b"\0")


def marked_pids(mark: str) -> list[int]:
    """Pids of live processes whose environment holds ``BENCH_MARK=<mark>``."""
    needle = f"{MARK_VAR}={mark}".encode()
    me = os.getpid()
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and int(entry.name) != me and _environ_has(int(entry.name), needle)
    ]


def kill_marked(mark: str) -> int:
    """SIGKILL every process carrying ``mark`` (never the caller); returns how many."""
    killed = 0
    for _ in range(3):  # a dying parent may still fork once more
        pids = marked_pids(mark)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def reap(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 5.0) -> None:
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)


def _parents() -> dict[int, int]:
    """pid -> ppid for every process."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        table[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return table


def tree(roots: Iterable[int]) -> list[int]:
    """``roots`` and all their live descendants."""
    parents = _parents()
    found = [r for r in roots if r in parents]
    index = 0
    while index < len(found):
        found += [pid for pid, ppid in parents.items() if ppid == found[index]]
        index += 1
    return found


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mib: float  # pages shared between the processes are counted in each
    pss_mib: float  # shared pages split between the processes that share them


def memory(pids: Iterable[int]) -> Memory:
    """Resident memory of ``pids`` (from /proc/<pid>/smaps_rollup)."""
    count, rss, pss = 0, 0, 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in lines if ":" in line}
        if "Rss" not in fields:
            continue
        count += 1
        rss += int(fields["Rss"])
        pss += int(fields.get("Pss", fields["Rss"]))
    return Memory(count, round(rss / 1024, 1), round(pss / 1024, 1))
