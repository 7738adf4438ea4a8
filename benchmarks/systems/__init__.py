"""The systems under test: pyresque and its peers, one module each.

Each module defines the three benchmark jobs for its system (a no-op, a 10 ms
sleep and a start-time stamp; their bodies are in ``jobutil``), how its users
start its workers in each execution mode, and a producer that enqueues through
its public API. Worker processes import the module the way each system's CLI
imports an application (``systems.<name>_bench``), so it only reads settings
from the environment:

* ``BENCH_REDIS_URL``: the Redis the system uses (the latency proxy, sometimes);
* ``BENCH_CONCURRENCY``: jobs at once per process, where that lives in code
  (arq's ``max_jobs``, saq's ``concurrency``); empty for the system's default;
* ``BENCH_BASELINE``: set only for ``pyresque@REF`` (bench.py ``--baseline REF``),
  pyresque as of an older commit: that commit, whose ``src`` comes first on
  ``PYTHONPATH`` (``pythonpath``) in the measuring process and its workers.

This package imports no peer: ``load(name)`` imports one system's module, in a
process that measures only that system.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BASELINE_VAR = "BENCH_BASELINE"
QUEUE = "bench"
KINDS = ("noop", "sleep", "stamp")
#: Workloads every mode takes part in; the system's main mode is also measured through
#: the latency proxy; modes made for concurrency also run the I/O-bound ones (10 ms jobs).
LOCAL = frozenset({"drain", "pickup"})
BASIC = LOCAL | {"proxy_drain"}
WITH_IO = BASIC | {"io", "proxy_io"}

#: system name -> module; the order is the order of the report's tables.
MODULES = {
    "pyresque": "systems.pyresque_bench",
    "rq": "systems.rq_bench",
    "celery": "systems.celery_bench",
    "dramatiq": "systems.dramatiq_bench",
    "huey": "systems.huey_bench",
    "arq": "systems.arq_bench",
    "taskiq": "systems.taskiq_bench",
    "saq": "systems.saq_bench",
}


def baseline_src(commit: str) -> Path:
    """Where bench.py extracts the ``src`` directory of a baseline commit."""
    return HERE / ".baseline" / commit / "src"


def pythonpath(env: Mapping[str, str]) -> str:
    """``PYTHONPATH`` of a measuring process (environment ``env``) and of its workers."""
    commit = env.get(BASELINE_VAR)
    return os.pathsep.join([str(baseline_src(commit)), str(HERE)] if commit else [str(HERE)])


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def concurrency_setting(default: int) -> int:
    value = os.environ.get("BENCH_CONCURRENCY", "").strip()
    return int(value) if value else default


def executable(name: str) -> str:
    """A console script of the interpreter's virtualenv (``rq``, ``celery``, ...)."""
    return str(Path(sys.executable).parent / name)


@dataclass(frozen=True)
class Mode:
    """One way of running a system's workers."""

    name: str
    #: How jobs run, for the report.
    summary: str
    #: The workloads this mode takes part in.
    workloads: frozenset[str] = BASIC
    #: Expected jobs/s on a no-op drain: sizes the first round's queue only.
    speed: float = 1000.0
    #: Concurrency used in the I/O-bound workloads (None: not run there).
    io_concurrency: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Producer(abc.ABC):
    """Enqueues the benchmark jobs through the system's public API."""

    @abc.abstractmethod
    def enqueue_calls(self, kind: str, n: int) -> None:
        """``n`` enqueue calls, one after the other."""

    def enqueue_one(self, kind: str) -> None:
        self.enqueue_calls(kind, 1)

    def enqueue_bulk(self, kind: str, n: int) -> None:
        """``n`` jobs through the system's bulk API."""
        raise NotImplementedError

    def preload(self, kind: str, n: int) -> None:
        """Fill the queue before a drain (untimed): the fastest way the API offers."""
        try:
            self.enqueue_bulk(kind, n)
        except NotImplementedError:
            self.enqueue_calls(kind, n)

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""


class AsyncProducer(Producer):
    """A producer for an asyncio API: one event loop, run by each call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.connect())

    async def connect(self) -> None:
        """Open connections (``startup`` and the like)."""

    @abc.abstractmethod
    async def enqueue(self, kind: str) -> None: ...

    async def disconnect(self) -> None:
        """Close connections."""

    def enqueue_calls(self, kind: str, n: int) -> None:
        async def calls() -> None:
            for _ in range(n):
                await self.enqueue(kind)

        self.loop.run_until_complete(calls())

    def preload(self, kind: str, n: int) -> None:
        async def concurrently() -> None:
            for start in range(0, n, 100):
                await asyncio.gather(*(self.enqueue(kind) for _ in range(min(100, n - start))))

        self.loop.run_until_complete(concurrently())

    def close(self) -> None:
        self.loop.run_until_complete(self.disconnect())
        self.loop.close()


class System(abc.ABC):
    name: str
    #: Distribution whose version the report gives.
    distribution: str
    #: True when the system has a bulk enqueue API.
    has_bulk = False
    #: One line for the report: what its bulk API is, or why there is none.
    bulk_api = "none"

    @abc.abstractmethod
    def modes(self) -> list[Mode]:
        """The execution modes available in this installation."""

    @abc.abstractmethod
    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        """Command lines that start ``workers`` workers (one process or several).

        ``concurrency`` is the I/O workload's jobs-at-once per process (None: the
        system's default). ``drain`` asks for a burst mode where the system has one.
        """

    @abc.abstractmethod
    def producer(self, mode: str) -> Producer: ...

    def version(self) -> str:
        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return "not installed"

    def mode(self, name: str) -> Mode:
        for mode in self.modes():
            if mode.name == name:
                return mode
        raise LookupError(f"{self.name} has no mode {name!r}")


def load(name: str) -> System:
    """Import one system's module and return its ``SYSTEM`` (``pyresque@REF``: pyresque's)."""
    module = importlib.import_module(MODULES[name.partition("@")[0]])
    system: System = module.SYSTEM
    return system
