"""CPU caps for the servers of a benchmark: each capped process in a cgroup (v1 ``cpu``
controller) of its own with the same CFS quota, so that a Redis server, not the
workers' Python, is what limits a run, as on a deployment whose workers have many
cores.

Usage::

    with CpuCaps(0.1, weight=4, favoured=7) as caps:    # 10% of one core per server
        caps.cap("master-1", server.pid)
        caps.favour(os.getpid())        # this process and the workers it starts
        ...
        caps.throttled("master-1")      # periods the quota held the process back

The groups live under ``/sys/fs/cgroup/cpu/pyresque-bench-<pid>/`` and are removed on
exit, on an exception, Ctrl-C or SIGTERM alike (a process still in one is moved back
to the root group first); those of a run killed by SIGKILL, at the next run. Needs
root and a writable cgroup v1 ``cpu`` controller: anything else is one ``CapError``
line.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType, TracebackType

ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


class CapError(RuntimeError):
    """The cgroup cannot be made or written."""


class CpuCaps:
    """Caps processes at ``share`` of one core each (``0.1``: 10 ms of CPU per 100 ms),
    and can favour ``favoured`` client processes with ``weight`` times a normal weight."""

    def __init__(
        self, share: float, weight: float = 1.0, favoured: int = 1, root: Path = ROOT
    ) -> None:
        if not 0.01 <= share <= 64:
            raise CapError(f"a CPU share of {share:g} makes no sense: give 0.01 to 64 cores")
        if not 0.01 <= weight * favoured <= 256:
            raise CapError(f"a weight of {weight:g} x {favoured} processes is out of 0.01 to 256")
        self.share = share
        self.weight = weight
        self.favoured = favoured
        self.root = root
        self.parent = root / f"pyresque-bench-{os.getpid()}"
        self.groups: dict[str, Path] = {}

    def __enter__(self) -> CpuCaps:
        _remove_stale(self.root)
        try:
            self.parent.mkdir()
        except OSError as error:
            raise CapError(
                f"cannot cap CPU: {self.root} is not a writable cgroup v1 cpu controller "
                f"({error.strerror}; needs root and that controller mounted)"
            ) from None
        # SIGTERM ends the run like Ctrl-C, so that the groups are removed then too.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def cap(self, name: str, pid: int | None) -> None:
        """Put process ``pid`` (every thread of it) in the capped group ``name``, made on
        first use. The group weighs as much as a process of the clients' group, so that
        the machine's other load cannot keep it below its cap."""
        if pid is None:
            raise CapError(f"cannot cap {name}: its process is not running")
        self._join(name, pid, round(self.share * PERIOD_US), self.weight)

    def favour(self, pid: int) -> None:
        """Put ``pid`` in the clients' group (no cap): each of the ``favoured`` processes
        there weighs ``weight`` times a process outside, standing in for clients with
        cores of their own. The children it starts later are in it too."""
        self._join("clients", pid, -1, self.weight * self.favoured)

    def _join(self, name: str, pid: int, quota_us: int, weight: float) -> None:
        group = self.groups.get(name)
        try:
            if group is None:
                group = self.parent / name
                group.mkdir()
                self.groups[name] = group
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota_us))
                (group / "cpu.shares").write_text(str(round(1024 * weight)))
                total = sum(int((g / "cpu.shares").read_text()) for g in self.groups.values())
                (self.parent / "cpu.shares").write_text(str(min(total, 262144)))
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            raise CapError(f"cannot cap {name} (pid {pid}): {error.strerror}") from None

    def throttled(self, name: str) -> tuple[int, float]:
        """The periods in which the quota stopped ``name``, and the seconds it waited."""
        stats = dict(
            line.split() for line in (self.groups[name] / "cpu.stat").read_text().splitlines()
        )
        return int(stats["nr_throttled"]), int(stats["throttled_time"]) / 1e9

    def close(self) -> None:
        """Remove every group (moving what still runs in one back to the root group)."""
        for group in [*self.groups.values(), self.parent]:
            if not group.exists():
                continue
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    (self.root / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # the process ended meanwhile: nothing to move
            try:
                group.rmdir()
            except OSError as error:  # said, not raised: it would hide the run's own error
                print(f"cpu caps: could not remove {group}: {error.strerror}", file=sys.stderr)
        self.groups.clear()


def _remove_stale(root: Path) -> None:
    """Remove the empty groups of runs whose process is gone (one killed by SIGKILL
    could not remove its own)."""
    for parent in root.glob("pyresque-bench-*"):
        pid = parent.name.rsplit("-", 1)[1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        try:
            for group in parent.iterdir():
                if group.is_dir():
                    group.rmdir()
            parent.rmdir()
        except OSError:
            continue  # a process still runs in it: left as it is


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
