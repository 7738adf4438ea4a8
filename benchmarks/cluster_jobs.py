"""The job of the cluster run (benchmarks/cluster.py); workers import it with ``--app``.
It does nothing: the run measures what the queue costs, and Redis's share of it."""

from __future__ import annotations

from pyresque import Job


class Noop(Job, name="Noop"):
    def perform(self, index: int) -> None:
        pass
