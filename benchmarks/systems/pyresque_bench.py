"""pyresque: ``pyresque worker`` in each ``--mode`` it offers; ``Resque.enqueue``.

The same module measures ``pyresque@REF`` (bench.py ``--baseline``): pyresque
imported from REF's checkout, its workers started as ``python -m pyresque.cli``,
since the installed ``pyresque`` script names this tree's entry point.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache

import jobutil

from pyresque import Enqueued, Job, Resque
from systems import (
    BASELINE_VAR,
    BASIC,
    QUEUE,
    WITH_IO,
    Mode,
    Producer,
    System,
    executable,
    redis_url,
)

NAMESPACE = "bench"


class BenchNoop(Job):
    def perform(self) -> None:
        jobutil.record()


class BenchSleep(Job):
    def perform(self) -> None:
        jobutil.sleep_then_record()


class BenchStamp(Job):
    def perform(self) -> None:
        jobutil.stamp()


class BenchNoopAsync(Job):
    async def perform(self) -> None:
        await jobutil.arecord()


class BenchSleepAsync(Job):
    async def perform(self) -> None:
        await jobutil.asleep_then_record()


class BenchStampAsync(Job):
    async def perform(self) -> None:
        await jobutil.astamp()


JOBS: dict[str, type[Job]] = {"noop": BenchNoop, "sleep": BenchSleep, "stamp": BenchStamp}
ASYNC_JOBS: dict[str, type[Job]] = {
    "noop": BenchNoopAsync,
    "sleep": BenchSleepAsync,
    "stamp": BenchStampAsync,
}

#: What each mode is, and how it runs the I/O-bound workload (10 at once).
KNOWN = {
    "fork": Mode("fork", "a child process per job (Resque's default)", speed=800),
    "inline": Mode("inline", "jobs run in the worker process", speed=6000),
    "prefork": Mode("prefork", "long-lived job child processes, reused", speed=3000),
    "threads": Mode("threads", "jobs on N threads of the worker", speed=5000),
    "asyncio": Mode("asyncio", "async def perform on one event loop", speed=3500),
}
#: Modes with --concurrency: these run the I/O-bound workload, 10 jobs at once.
CONCURRENT = ("prefork", "threads", "asyncio")
IO_CONCURRENCY = 10


def cli() -> list[str]:
    """The start of a ``pyresque`` command line, for this tree or the baseline."""
    if os.environ.get(BASELINE_VAR):
        return [sys.executable, "-m", "pyresque.cli"]
    return [executable("pyresque")]


@cache
def cli_modes() -> tuple[str, ...]:
    """The modes ``pyresque worker --help`` lists (another engineer adds modes over time)."""
    out = subprocess.run(
        [*cli(), "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    found = re.search(r"--mode\s+\[([a-z|]+)\]", out)
    return tuple(found.group(1).split("|")) if found else ("fork",)


class PyresqueProducer(Producer):
    def __init__(self, mode: str) -> None:
        self.resque = Resque(redis_url(), namespace=NAMESPACE)
        self.jobs = ASYNC_JOBS if mode == "asyncio" else JOBS

    def enqueue_calls(self, kind: str, n: int) -> None:
        enqueue, job = self.resque.enqueue, self.jobs[kind]
        for _ in range(n):
            enqueue(QUEUE, job, None)

    def enqueue_bulk(self, kind: str, n: int) -> None:
        job = self.jobs[kind]
        self.resque.enqueue_many([Enqueued(QUEUE, job, [None]) for _ in range(n)])

    def close(self) -> None:
        self.resque.redis.close()


class Pyresque(System):
    name = "pyresque"
    distribution = "pyresque"
    has_bulk = True
    bulk_api = "Resque.enqueue_many (pipelined Lua calls, 1,000 jobs each)"

    def version(self) -> str:
        commit = os.environ.get(BASELINE_VAR)
        return f"{super().version()} at {commit[:10]}" if commit else super().version()

    def modes(self) -> list[Mode]:
        found = [KNOWN.get(m, Mode(m, f"--mode {m}")) for m in cli_modes()]
        return [
            Mode(m.name, m.summary, WITH_IO, m.speed, IO_CONCURRENCY)
            if m.name in CONCURRENT
            else Mode(m.name, m.summary, BASIC, m.speed)
            for m in found
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        argv = [
            *cli(), "worker",
            "--queue", QUEUE,
            "--app", "systems.pyresque_bench",
            "--redis-url", redis_url(),
            "--namespace", NAMESPACE,
            "--quiet",
            "--mode", mode,
            "--interval", "0" if drain else "5",
        ]  # fmt: skip
        if mode == "prefork":  # the pool's processes are the workers
            argv += ["--concurrency", str(concurrency or workers)]
        elif mode in CONCURRENT:
            argv += ["--count", str(workers)]
            if concurrency:
                argv += ["--concurrency", str(concurrency)]
        else:
            argv += ["--count", str(workers)]
        return [argv]

    def producer(self, mode: str) -> Producer:
        return PyresqueProducer(mode)


SYSTEM = Pyresque()
