"""The jobs of the cluster runs (benchmarks/cluster.py, cluster_failure.py); workers
import them with ``--app``."""

from __future__ import annotations

import os
import time

from pyresque import Job


class Noop(Job, name="Noop"):
    """Does nothing: the throughput run measures what the queue costs, and Redis's share."""

    def perform(self, index: int) -> None:
        pass


class Counted(Job, name="Counted"):
    """Appends ``<index> <unix time>`` to the file named by ``CLUSTER_RUNS``: one
    ``os.write`` on an ``O_APPEND`` file (lines never mix), outside Redis, so that what
    a failure loses there cannot hide a run."""

    def perform(self, index: int) -> None:
        fd = os.open(os.environ["CLUSTER_RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{index} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)
