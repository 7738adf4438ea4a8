"""What a worker pays per job to make it cancellable and let it report progress
(``worker/running_jobs.py``: ``RunningJobs.begin`` + ``end``), in-process, against two
empty method calls, in interleaved rounds (docs/workflows.md quotes the result).

    python benchmarks/running_jobs_cost.py [--jobs 100000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from pyresque.executors.base import Stop
from pyresque.jobs.job import Job
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.protocol.reports import ReportWriter
from pyresque.worker.running_jobs import RunningJobs


class _Job(Job, register=False):
    def perform(self) -> None:
        pass


class _Empty:
    def begin(self, job: Job, executor: Any) -> None:
        pass

    def end(self, job: Job) -> None:
        pass


def _per_job_us(tracker: Any, jobs: list[Job]) -> float:
    began = time.perf_counter()
    for job in jobs:
        tracker.begin(job, None)
        tracker.end(job)
    return (time.perf_counter() - began) / len(jobs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    keys = Keys.for_namespace("bench")
    tracker = RunningJobs(None, keys, ReportWriter(None, keys), Stop())  # type: ignore[arg-type]
    payload = Payload.decode(b'{"class":"_Job","args":[],"id":"0123456789abcdef"}')
    jobs: list[Job] = [_Job(payload, "q") for _ in range(args.jobs)]
    tracked, empty = [], []
    for _ in range(args.rounds):
        tracked.append(_per_job_us(tracker, jobs))
        empty.append(_per_job_us(_Empty(), jobs))
    print(
        f"RunningJobs.begin + end: {statistics.median(tracked):.2f} us a job; two empty "
        f"calls: {statistics.median(empty):.2f} us (medians of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
