#!/usr/bin/env python
"""Client CPU of one ``Resque.enqueue`` call, this tree against other commits.

    python benchmarks/enqueue_cpu.py --baseline b0ad8f1 [--baseline REF ...]
                                     [--rounds 8] [--calls 3000] [--batch N]

Starts a private Redis (never touches another one); per round, one fresh process
per tree, in turn (each REF's ``src`` extracted once with ``git archive``, first on
its ``PYTHONPATH``), makes 50 warm-up calls, then ``--calls`` plain enqueues of a
no-op job, and reports the user CPU (``getrusage``), the process CPU and the wall
time per call. With ``--batch N``, each call is one ``enqueue_many`` of N jobs and
the figures are per job. Prints every round and each tree's medians, with the load average
before and after (the rates of benchmarks/run.sh swing with the machine's load; the
CPU per call much less).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pyresque.dev.server import RedisServer

REPO = Path(__file__).resolve().parents[1]

#: One fresh process's measurement: argv is the URL and the number of calls.
CHILD = """
import resource, sys, time
from pyresque import Enqueued, Job, Resque

class CpuNoop(Job):
    def perform(self):
        pass

rq = Resque(sys.argv[1], namespace="enqueue-cpu")
n, batch = int(sys.argv[2]), int(sys.argv[3])

def call():
    if batch:  # a new list each call, as an application builds it
        rq.enqueue_many([Enqueued("q", CpuNoop, [None]) for _ in range(batch)])
    else:
        rq.enqueue("q", CpuNoop, None)

for _ in range(50 if not batch else 2):
    call()
rq.redis.delete(rq.keys.queue("q"))
user = resource.getrusage(resource.RUSAGE_SELF).ru_utime
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(n):
    call()
user = resource.getrusage(resource.RUSAGE_SELF).ru_utime - user
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
jobs = n * (batch or 1)
print(user / jobs * 1e6, cpu / jobs * 1e6, wall / jobs * 1e6)
rq.redis.delete(rq.keys.queue("q"))
"""


def extract(ref: str, into: Path) -> Path:
    """``ref``'s ``src`` directory, extracted under ``into``."""
    target = into / ref.replace("/", "_")
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--baseline", action="append", default=[], metavar="REF")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=0, help="jobs per enqueue_many call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        trees = {ref: extract(ref, Path(tmp)) for ref in args.baseline}
        trees["this tree"] = REPO / "src"
        found: dict[str, list[tuple[float, ...]]] = {name: [] for name in trees}
        unit = "job" if args.batch else "call"
        print(f"load average before: {load()}", flush=True)
        for round_ in range(1, args.rounds + 1):
            for name, src in trees.items():
                env = {**os.environ, "PYTHONPATH": str(src)}
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, server.url, str(args.calls), str(args.batch)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                figures = tuple(float(x) for x in out.split())
                found[name].append(figures)
                print(
                    f"round {round_} {name:>12}: user {figures[0]:.1f} us, cpu "
                    f"{figures[1]:.1f} us, wall {figures[2]:.1f} us per {unit}",
                    flush=True,
                )
        print(f"load average after: {load()}")
        for name, rows in found.items():
            user, cpu, wall = (statistics.median(column) for column in zip(*rows, strict=True))
            print(f"{name:>12}: median user {user:.1f} us, cpu {cpu:.1f} us, wall {wall:.1f} us")


if __name__ == "__main__":
    main()
