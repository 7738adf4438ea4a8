#!/usr/bin/env python
"""The hand-over floor of fork and prefork modes: a second process in a job's way.

    python benchmarks/handover.py [--rounds 3] [--samples 300]

No Redis: a process writes a time stamp to a pipe after 5 to 15 ms of quiet (as
benchmarks/pickup.py enqueues), and the process that ends the chain records how long
the stamp took to reach it. Three chains take turns sample by sample:

* ``one``: one process blocked in ``os.read``: one wake, as the BRPOP floor's;
* ``two``: that process passes the stamp on to a second, long-lived one blocked on
  another pipe: two wakes in a row, as prefork's worker and child;
* ``fresh``: the second process is forked after the previous sample (as fork mode's
  zygote forks a child after the previous job) and waits for its one stamp;
* ``rehearsed``: as ``fresh``, the child first running 2 ms of CPU (as fork mode's
  child rehearses a job, zygote.py) before it waits.

Python processes, the stamp and the record as small as they get: what is left of
``fresh`` over ``one`` is what fork mode's worker, child and scheduler cannot save.
Prints one line per round and ``RESULT <JSON>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable

STAMP = 8  # bytes: time.time_ns()
REHEARSAL = 0.002  # CPU seconds a ``rehearsed`` child runs before it waits


def _relay(source: int, onward: int) -> None:
    """Read stamps from ``source``, write each on to ``onward``."""
    while data := os.read(source, STAMP):
        os.write(onward, data)


def _record(source: int, results: int) -> None:
    """Read stamps from ``source``; write back how old each was (ns)."""
    while data := os.read(source, STAMP):
        age = time.time_ns() - int.from_bytes(data, "little")
        os.write(results, age.to_bytes(STAMP, "little"))


def _fork(body: Callable[..., None], *args: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            body(*args)
        finally:
            os._exit(0)
    return pid


def _fresh_relay(source: int, results: int, busy: float = 0.0) -> None:
    """As ``_relay``, to a child forked after each stamp, which first runs for ``busy``
    seconds (as fork mode's child rehearses a job), then records its one stamp."""
    while True:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(writer)
            end = time.thread_time() + busy
            while time.thread_time() < end:
                pass
            data = os.read(reader, STAMP)
            age = time.time_ns() - int.from_bytes(data, "little")
            os.write(results, age.to_bytes(STAMP, "little"))
            os._exit(0)
        os.close(reader)
        data = os.read(source, STAMP)
        if not data:
            os.close(writer)
            os.waitpid(pid, 0)
            return
        os.write(writer, data)
        os.close(writer)
        os.waitpid(pid, 0)


def _rehearsed_relay(source: int, results: int) -> None:
    _fresh_relay(source, results, busy=REHEARSAL)


def round_of(samples: int) -> dict[str, float]:
    """p50 (µs) of each chain over ``samples`` stamps each, taking turns."""
    results_r, results_w = os.pipe()
    chains: dict[str, int] = {}
    pids = []
    # one
    a_r, a_w = os.pipe()
    pids.append(_fork(_record, a_r, results_w))
    chains["one"] = a_w
    # two
    b_r, b_w = os.pipe()
    c_r, c_w = os.pipe()
    pids.append(_fork(_record, c_r, results_w))
    pids.append(_fork(_relay, b_r, c_w))
    chains["two"] = b_w
    # fresh
    d_r, d_w = os.pipe()
    pids.append(_fork(_fresh_relay, d_r, results_w))
    chains["fresh"] = d_w
    # rehearsed
    e_r, e_w = os.pipe()
    pids.append(_fork(_rehearsed_relay, e_r, results_w))
    chains["rehearsed"] = e_w
    for fd in (a_r, b_r, c_r, c_w, d_r, e_r, results_w):
        os.close(fd)
    ages: dict[str, list[float]] = {name: [] for name in chains}
    for index in range(samples + 3):
        for name in random.sample(list(chains), len(chains)):
            time.sleep(random.uniform(0.005, 0.015))
            os.write(chains[name], time.time_ns().to_bytes(STAMP, "little"))
            age = int.from_bytes(os.read(results_r, STAMP), "little")
            if index >= 3:
                ages[name].append(age / 1000)
    for pid in pids:  # (each holds the others' pipe ends: no end of file to wait for)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for fd in chains.values():
        os.close(fd)
    os.close(results_r)
    return {name: statistics.median(found) for name, found in ages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300)
    opts = parser.parse_args()
    rounds = []
    for index in range(opts.rounds):
        got = round_of(opts.samples)
        rounds.append(got)
        shown = ", ".join(f"{name} {us:.0f} µs" for name, us in got.items())
        print(f"[r{index + 1}] p50: {shown} (load {os.getloadavg()[0]:.1f})", flush=True)
    print("RESULT " + json.dumps({"rounds": rounds, "load": os.getloadavg()}))


if __name__ == "__main__":
    sys.exit(main())
