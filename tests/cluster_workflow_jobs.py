"""Job classes for the workflow tests on Redis Cluster (tests/test_cluster_workflows.py),
for workers in the test's process and for real ``pyresque worker`` processes (``--app``).
Each records its run as a line in a file (outside Redis), named by its first argument."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from pyresque import Job


def record(path: str, line: str) -> int:
    """Append ``line`` to ``path`` (one write on an O_APPEND file: lines never mix);
    returns how many times ``line`` is there now."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
    with open(path) as lines:
        return lines.read().split("\n").count(line)


class CStep(Job):
    """Records ``tag`` (and the previous result it was given), returns ``tag``."""

    store_result = True

    def perform(self, path: str, tag: str, *previous: Any) -> str:
        given = previous[0] if previous else None
        given = "+".join(given) if isinstance(given, list) else given
        record(path, f"{tag}<-{given}" if previous else tag)
        return tag


class CFails(Job):
    """Fails until ``<path>.fixed`` exists."""

    def perform(self, path: str, tag: str) -> str:
        record(path, tag)
        if not os.path.exists(path + ".fixed"):
            raise RuntimeError("not fixed yet")
        return tag


class CSlow(Job):
    """Records ``tag``, then waits for ``<path>.go`` (a job a test cancels while it runs)."""

    def perform(self, path: str, tag: str) -> None:
        record(path, tag)
        while not os.path.exists(path + ".go"):
            time.sleep(0.05)


def _killed_at_the_gap(*_args: Any, **_kwargs: Any) -> None:
    """SIGKILLs this worker where it stands (it runs in a process group of its own)."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


# A worker started with CWF_KILL_AT set dies at a gap between two single-slot workflow
# calls: "report", after a finish recorded the job's end in its queue's slot and before
# that end is applied; "push", after it was applied (the next steps released) and before
# they are pushed onto their queues.
if os.environ.get("CWF_KILL_AT") == "report":
    from pyresque.middleware import workflows as _middleware

    setattr(_middleware, "apply_reports", _killed_at_the_gap)  # noqa: B010
elif os.environ.get("CWF_KILL_AT") == "push":
    from pyresque.protocol import workflow as _workflow

    setattr(_workflow, "push_released", _killed_at_the_gap)  # noqa: B010
