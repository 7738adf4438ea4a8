#!/usr/bin/env python
"""The long hostile-input campaign (issue 11, section 7).

The generators and checks of tests/test_hostile_properties.py (tests/hostile_gen.py),
with many more examples: for each execution mode, one real ``pyresque worker``
process on a private ``redis-server`` takes batches of generated queue items (any
JSON value in any field, numeric edge cases, deep nesting, lone surrogates, raw
garbage), each batch followed by a good job; then a fork-mode worker recovers
batches of generated in-flight records planted for dead workers. Every item must
end with exactly one fate, ran once or failed once, and the worker must stay alive.

    python benchmarks/fuzz.py                        # 300 batches per mode, 300 recoveries
    python benchmarks/fuzz.py --batches 20 --modes fork,threads --recoveries 10

Prints, per campaign, the batches, items, seconds, fates and failure exceptions,
worker deaths and tracebacks in the worker's log. Exit status 0 when every item
had one fate and no worker died or logged a traceback; 1 otherwise (the failing
example is printed, shrunk by Hypothesis).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import start  # noqa: E402

import hostile_gen as gen  # noqa: E402  (tests/ is put on the path just above)
from pyresque.cli.main import without_settings  # noqa: E402
from pyresque.dev.server import RedisServer  # noqa: E402

MODES = ("fork", "prefork", "inline", "threads", "asyncio")
JOBS = ROOT / "tests" / "hostile_jobs.py"


@dataclass
class Campaign:
    """One worker's share of the run, and what it made of it."""

    name: str
    batches: int = 0
    items: int = 0
    seconds: float = 0.0
    fates: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    deaths: int = 0
    tracebacks: int = 0
    error: str = ""

    def add(self, items: int, fates: Counter[str]) -> None:
        self.batches += 1
        self.items += items
        self.fates.update(fates)


class Worker:
    """A ``pyresque worker`` of one mode on its own namespace."""

    def __init__(self, url: str, mode: str, namespace: str, logs: Path) -> None:
        self.client = redis.Redis.from_url(url)
        self.namespace = namespace
        self.log = logs / f"{namespace}.log"
        env = without_settings(os.environ)
        env.update(E2E_REDIS_URL=url, E2E_NS=namespace, PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(JOBS)]
        argv += ["--redis-url", url, "--namespace", namespace, "--queue", "default"]
        argv += ["--mode", mode, "--lease-ttl", "1"]
        if mode in ("threads", "asyncio", "prefork"):
            argv += ["--concurrency", "2"]
        self.proc: subprocess.Popen[bytes] = start(argv, env, self.log, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not self.client.scard(f"{namespace}:workers"):
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"the {mode} worker did not start; see {self.log}")
            time.sleep(0.05)
        self.ledger = gen.Ledger(self.client, namespace)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()


SETTINGS = settings(
    deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True
)


Runner = Callable[[redis.Redis, str, gen.Ledger, Any, Callable[[], bool]], Counter[str]]


def run(
    name: str, worker: Worker, examples: int, strategy: st.SearchStrategy[Any], runner: Runner
) -> Campaign:
    """Batches drawn from ``strategy`` through ``runner`` (hostile_gen.run_items or
    run_records) under Hypothesis; the figures, and the shrunk failure if one."""
    campaign = Campaign(name)

    @settings(SETTINGS, max_examples=examples)
    @given(batch=st.lists(strategy, min_size=1, max_size=8))
    def body(batch: list[Any]) -> None:
        fates = runner(worker.client, worker.namespace, worker.ledger, batch, worker.alive)
        campaign.add(len(batch), fates)

    started = time.monotonic()
    try:
        body()
    except Exception:  # the shrunk failing example: reported, and the run goes on
        campaign.error = traceback.format_exc(limit=3)
    campaign.seconds = time.monotonic() - started
    campaign.exceptions = worker.ledger.exceptions
    campaign.deaths = 0 if worker.alive() else 1
    campaign.tracebacks = worker.tracebacks()
    return campaign


def report(campaigns: list[Campaign], command: str) -> str:
    lines = [
        f"$ {command}",
        "",
        "| campaign | batches | items | seconds | ran | failed | worker deaths | tracebacks |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in campaigns:
        lines.append(
            f"| {c.name} | {c.batches} | {c.items} | {c.seconds:.0f} | {c.fates['ran']} "
            f"| {c.fates['failed']} | {c.deaths} | {c.tracebacks} |"
        )
    total: Counter[str] = Counter()
    for c in campaigns:
        total.update(c.exceptions)
    lines += ["", "failure records by exception (all campaigns):"]
    lines += [f"  {count:6d}  {name}" for name, count in total.most_common()]
    for c in campaigns:
        if c.error:
            lines += ["", f"FAILED in {c.name}:", c.error]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300, help="batches of items per mode")
    parser.add_argument("--recoveries", type=int, default=300, help="batches of records")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    args = parser.parse_args(argv)
    command = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    campaigns: list[Campaign] = []
    with tempfile.TemporaryDirectory(prefix="pyresque-fuzz-") as tmp:
        server = RedisServer().start()
        try:
            for i, mode in enumerate(m for m in args.modes.split(",") if m):
                worker = Worker(server.url, mode, f"fuzz{i}{mode}", Path(tmp))
                try:
                    campaigns.append(run(mode, worker, args.batches, gen.items(), gen.run_items))
                finally:
                    worker.stop()
            if args.recoveries:
                worker = Worker(server.url, "fork", "fuzzrecovery", Path(tmp))
                try:
                    campaigns.append(
                        run("recovery", worker, args.recoveries, gen.records(), gen.run_records)
                    )
                finally:
                    worker.stop()
        finally:
            server.stop()
        print(report(campaigns, command.strip()))
        bad = any(c.error or c.deaths or c.tracebacks for c in campaigns)
        if bad:
            keep = Path(tempfile.mkdtemp(prefix="pyresque-fuzz-logs-"))
            for log in Path(tmp).glob("*.log"):
                log.rename(keep / log.name)
            print(f"\nworker logs kept in {keep}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
