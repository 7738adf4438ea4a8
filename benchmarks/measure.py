#!/usr/bin/env python
"""One measurement, in a fresh process: ``python measure.py '<spec as JSON>'``.

The orchestrator (bench.py) runs one of these per system, workload and round, and
reads the last line of its output: ``RESULT <JSON>``. Actions:

* ``probe``: the system's version, modes and worker command lines;
* ``floor``: one of floors.py's loops;
* ``enqueue`` / ``bulk``: N jobs through the system's per-call / bulk API;
* ``drain`` (no-op jobs) and ``io`` (10 ms jobs): fill the queue, start the workers
  as their users do, wait until the results file holds N records, and time the
  jobs between the ``skip``-th and the last record (each stamped by the job
  itself), so worker start-up is not counted; optionally through the latency proxy;
* ``pickup``: an idle worker; one job at a time; job start minus enqueue time.

Jobs record themselves in the results file (jobutil; its path in
``BENCH_RESULTS_FILE``), which is emptied before each measurement; Redis sees no
command from a job. ``BENCH_DIRECT_URL`` is the benchmark's Redis, never the proxy.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import harness
import jobutil
import redis

HERE = Path(__file__).resolve().parent


class Failed(Exception):
    """The measurement could not be made; the message says why."""


def log_tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:200] for line in text[-lines:])


def direct() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_DIRECT_URL"])


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since CONFIG RESETSTAT (commands run by Lua scripts included),
    plus ``@cpu_us`` (the server's CPU time, INFO cpu) and ``@eval_us`` (the time spent
    in EVAL/EVALSHA, the commands their scripts run included), both in microseconds."""
    import floors

    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    calls["@eval_us"] = sum(int(v["usec"]) for k, v in stats.items() if "eval" in k)
    calls["@cpu_us"] = int(floors.redis_cpu(client) * 1e6)
    return calls


def redis_costs(calls: dict[str, int], jobs: int) -> dict[str, float]:
    """Per job, from the difference of two ``command_calls``: Redis CPU and EVAL time."""
    return {
        "redis_cpu_us": calls.pop("@cpu_us", 0) / jobs,
        "eval_us": calls.pop("@eval_us", 0) / jobs,
    }


class Proxy:
    """The latency proxy (proxy.py), as a child process we can ask for its counters."""

    def __init__(self, delay_ms: float, log: Path) -> None:
        target = os.environ["BENCH_DIRECT_URL"].split("//")[1].split("/")[0]
        self.proc = harness.start(
            [
                sys.executable,
                str(HERE / "proxy.py"),
                "--target",
                target,
                "--delay-ms",
                str(delay_ms),
            ],
            os.environ,
            log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise Failed(f"the latency proxy did not start: {log_tail(log)}")
        self.url = f"redis://127.0.0.1:{int(line.split()[1])}/0"

    def snap(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(b"snap\n")
        self.proc.stdin.flush()
        counters: dict[str, int] = json.loads(self.proc.stdout.readline())
        return counters

    def rtt_ms(self) -> float:
        """Median PING round trip through the proxy."""
        client = redis.Redis.from_url(self.url)
        try:
            return ping_rtt_ms(client)
        finally:
            client.close()


def ping_rtt_ms(client: redis.Redis, pings: int = 200) -> float:
    """Median PING round trip, in ms."""
    client.ping()
    times = []
    for _ in range(pings):
        started = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def results() -> str:
    return os.environ[jobutil.RESULTS_VAR]


def start_workers(
    spec: dict[str, Any], url: str, concurrency: int | None, drain: bool
) -> list[subprocess.Popen[bytes]]:
    from systems import load, pythonpath

    os.environ["BENCH_REDIS_URL"] = url  # commands() reads it
    system = load(spec["system"])
    env = dict(os.environ)
    env.update(
        BENCH_CONCURRENCY=str(concurrency or ""),
        PYTHONPATH=pythonpath(env),
        PYTHONUNBUFFERED="1",
    )
    argvs = system.commands(spec["mode"], spec["workers"], concurrency, drain)
    return [harness.start(argv, env, Path(spec["log"]), cwd=HERE) for argv in argvs]


# --- actions --------------------------------------------------------------------


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    from systems import load

    placeholder = "redis://127.0.0.1:1/0"  # never connected to: shown as $URL
    os.environ["BENCH_REDIS_URL"] = placeholder
    system = load(spec["system"])
    modes = []
    for mode in system.modes():
        argvs = system.commands(mode.name, 1, None, True)
        shown = [" ".join([Path(a[0]).name, *a[1:]]).replace(placeholder, "$URL") for a in argvs]
        info = asdict(mode)
        info["workloads"] = sorted(mode.workloads)
        info["command"] = shown[0]
        modes.append(info)
    return {
        "version": system.version(),
        "modes": modes,
        "has_bulk": system.has_bulk,
        "bulk_api": system.bulk_api,
    }


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    import floors

    client = direct()
    client.flushall()
    jobutil.reset(results())
    url = os.environ["BENCH_DIRECT_URL"]
    if spec["mode"] == "pickup":
        return floors.pickup(url, spec["n"])
    return {**floors.FLOORS[spec["mode"]](url, spec["n"]), "n": spec["n"]}


def enqueue(spec: dict[str, Any], bulk: bool) -> dict[str, Any]:
    from systems import load

    client = direct()
    client.flushall()
    system = load(spec["system"])
    if bulk and not system.has_bulk:
        return {"skipped": system.bulk_api}
    producer = system.producer(spec["mode"])
    try:
        producer.enqueue_calls("noop", 20)  # connect, load scripts, warm caches
        n = spec["n"]
        before = command_calls(client)
        started = time.perf_counter()
        if bulk:
            producer.enqueue_bulk("noop", n)
        else:
            producer.enqueue_calls("noop", n)
        elapsed = time.perf_counter() - started
        after = command_calls(client)
    finally:
        producer.close()
    costs = redis_costs({k: after[k] - before.get(k, 0) for k in after}, n)
    return {"rate": n / elapsed, "n": n, **costs}


def drain(spec: dict[str, Any], kind: str) -> dict[str, Any]:
    from systems import load

    client = direct()
    client.flushall()
    path = results()
    jobutil.reset(path)
    n: int = max(spec["n"], 40)
    skip = max(10, n // 20)
    system = load(spec["system"])
    producer = system.producer(spec["mode"])
    try:
        producer.preload(kind, n)
    finally:
        producer.close()
    proxy = Proxy(spec["delay_ms"], Path(spec["log"])) if spec.get("delay_ms") else None
    url = proxy.url if proxy else os.environ["BENCH_DIRECT_URL"]
    result: dict[str, Any] = {"n": n, "skip": skip}
    if proxy:
        result["rtt_ms"] = proxy.rtt_ms()
        result["direct_rtt_ms"] = ping_rtt_ms(client)
    client.config_resetstat()
    started = time.time()
    procs = start_workers(spec, url, spec.get("concurrency"), True)
    # Redis's and the proxy's counters when the skip-th job has recorded and at the end,
    # each with the number of records read right after it.
    snaps: list[tuple[int, dict[str, int], dict[str, int]]] = []

    def snap() -> None:
        calls = command_calls(client)
        snaps.append((jobutil.count(path), calls, proxy.snap() if proxy else {}))

    partial = False
    window_start = 0.0
    while True:
        time.sleep(0.002)  # ~1% of a core; the rate comes from the jobs' own stamps
        done = jobutil.count(path)
        now = time.time()
        if not snaps and done >= skip:
            snap()
            window_start = now
        if done >= n:
            snap()
            break
        if not snaps and now - started > spec["startup_timeout"]:
            limit = spec["startup_timeout"]
            raise Failed(f"{done} jobs ran in {limit:.0f} s: {log_tail(Path(spec['log']))}")
        if snaps and now - window_start > spec["window_max"]:
            partial = True  # too slow to finish: rate over the jobs done by now
            snap()
            break
        if all(p.poll() is not None for p in procs) and jobutil.count(path) < n:
            raise Failed(
                f"the workers exited after {done} of {n} jobs: {log_tail(Path(spec['log']))}"
            )
    stamps = sorted(jobutil.times(path))
    t0, t1 = stamps[skip - 1], stamps[-1]
    jobs = len(stamps) - skip
    rate = jobs / (t1 - t0) if t1 > t0 else 0.0
    result.update(rate=rate, seconds=t1 - t0, partial=partial, done=len(stamps))
    result["startup_s"] = t0 - started
    (c0, stats0, proxied0), (c1, stats1, proxied1) = snaps
    counted = max(1, c1 - c0)  # the jobs between the two snapshots
    calls = {k: stats1.get(k, 0) - stats0.get(k, 0) for k in stats1}
    calls["info"] = calls.get("info", 0) - 2  # the first snapshot's two (ours)
    result.update(redis_costs(calls, counted))
    result["commands_per_job"] = sum(calls.values()) / counted
    result["top_commands"] = {
        k: round(v / counted, 2)
        for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:8]
        if v > 0
    }
    if proxy:
        result["round_trips_per_job"] = (proxied1["requests"] - proxied0["requests"]) / counted
    return result


def pickup(spec: dict[str, Any]) -> dict[str, Any]:
    from systems import load

    client = direct()
    client.flushall()
    path = results()
    jobutil.reset(path)
    url = os.environ["BENCH_DIRECT_URL"]
    procs = start_workers(spec, url, None, False)
    system = load(spec["system"])
    producer = system.producer(spec["mode"])
    try:
        deadline = time.time() + spec["startup_timeout"]
        while True:  # until the worker runs a job
            producer.enqueue_one("stamp")
            if jobutil.wait(path, 1, timeout=1.0, poll=0.01):
                break
            if time.time() > deadline:
                raise Failed(f"no job started in time: {log_tail(Path(spec['log']))}")
            if all(p.poll() is not None for p in procs):
                raise Failed(f"the worker exited: {log_tail(Path(spec['log']))}")
        seen = 0
        for _ in range(20):  # let the other warm-up jobs run: until no new record comes
            time.sleep(0.3)
            if jobutil.count(path) == seen:
                break
            seen = jobutil.count(path)
        latencies: list[float] = []
        timeouts = 0
        begun = time.time()
        warmup = 3
        for index in range(spec["samples"] + warmup):
            time.sleep(random.uniform(0.005, 0.015))  # the worker is idle, waiting
            seen = jobutil.count(path)
            enqueued = time.time()
            producer.enqueue_one("stamp")
            if not jobutil.wait(path, seen + 1, timeout=spec["sample_timeout"]):
                timeouts += 1
                break  # a late record would pair with the next job: stop here
            if index >= warmup:  # the first few warm up both sides
                latencies.append(jobutil.times(path, seen)[0] - enqueued)
            spent = time.time() - begun
            if spent > spec["budget"] * 3 or (spent > spec["budget"] and len(latencies) >= 10):
                break  # a polling worker is slow to sample: take fewer samples
        memory = harness.memory(harness.tree([p.pid for p in procs]))
    finally:
        producer.close()
    if len(latencies) < 5:
        raise Failed(f"only {len(latencies)} samples ({timeouts} timed out)")
    latencies.sort()
    ms = [x * 1000 for x in latencies]

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": ms[-1],
        "samples": len(ms),
        "timeouts": timeouts,
        "memory": asdict(memory),
    }


ACTIONS = {
    "probe": probe,
    "floor": floor,
    "enqueue": lambda spec: enqueue(spec, bulk=False),
    "bulk": lambda spec: enqueue(spec, bulk=True),
    "drain": lambda spec: drain(spec, "noop"),
    "io": lambda spec: drain(spec, "sleep"),
    "pickup": pickup,
}


def main() -> int:
    spec = json.loads(sys.argv[1])
    # Run by hand, we mark our processes ourselves, so none outlives this measurement.
    os.environ.setdefault(harness.MARK_VAR, f"measure-{os.getpid()}-{time.time_ns()}")
    own_results = jobutil.RESULTS_VAR not in os.environ
    if own_results:
        fd, os.environ[jobutil.RESULTS_VAR] = tempfile.mkstemp(prefix="bench-results-")
        os.close(fd)
    code = 0
    try:
        result = ACTIONS[spec["action"]](spec)
    except Failed as exc:
        result, code = {"error": str(exc)}, 1
    except Exception as exc:
        traceback.print_exc()
        result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
    finally:
        harness.kill_marked(os.environ[harness.MARK_VAR])
        if own_results:
            os.unlink(os.environ[jobutil.RESULTS_VAR])
    print("RESULT " + json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
