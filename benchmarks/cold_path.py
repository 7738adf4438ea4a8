#!/usr/bin/env python
"""What the worker's first steps after a pickup cost run cold: after an idle gap.

    python benchmarks/cold_path.py [--samples 200] [--gaps 0,0.1,1,10,100]

Times, in this process, the first step an idle worker runs on a job's payload
(``Work.of``: decode the payload, check its fields, make the job) and, for reference,
a bare ``json.loads`` of the same bytes, each once after sleeping ``gap`` ms (0: back
to back, warm), and once more right after (the same code, now warm). No Redis. On a
machine whose caches other processes (or other virtual machines) share, code that has
not run for a few milliseconds runs many times slower than warm code: the pickup
latency of an idle worker is mostly such code (docs/scaling.md, "Pickup latency").

Prints one line per gap: the medians, in µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pickup_jobs  # noqa: F401  (registers PickupStamp)

from pyresque.jobs.job import registry
from pyresque.middleware.work import Work
from pyresque.protocol.claim import Claim
from pyresque.protocol.payload import Payload


def first_and_again(step: Callable[[], object], gap: float, samples: int) -> tuple[float, float]:
    """Median µs of ``step`` after ``gap`` seconds of sleep, and of the call right after."""
    first, again = [], []
    for _ in range(samples):
        if gap:
            time.sleep(gap)
        started = time.perf_counter_ns()
        step()
        between = time.perf_counter_ns()
        step()
        ended = time.perf_counter_ns()
        first.append(between - started)
        again.append(ended - between)
    return statistics.median(first) / 1e3, statistics.median(again) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--gaps", default="0,0.1,1,10,100", help="idle gaps, ms")
    opts = parser.parse_args()
    raw = Payload.build("PickupStamp", [{}]).encode().encode()
    claim = Claim("token", "q", raw)
    steps = {"Work.of": lambda: Work.of(claim, registry), "json.loads": lambda: json.loads(raw)}
    for gap in (float(ms) / 1e3 for ms in opts.gaps.split(",")):
        samples = opts.samples if gap < 0.05 else max(20, opts.samples // 5)
        cells = []
        for name, step in steps.items():
            cold, warm = first_and_again(step, gap, samples)
            cells.append(f"{name} {cold:6.1f} (then {warm:5.1f})")
        print(f"after {gap * 1e3:6.1f} ms idle: " + ", ".join(cells) + " µs", flush=True)


if __name__ == "__main__":
    sys.exit(main())
