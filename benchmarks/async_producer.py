"""AsyncResque beside Resque: enqueue rates on a private Redis server.

    .venv/bin/python benchmarks/async_producer.py [--jobs 5000] [--rounds 3] [--output docs]

For each way of enqueueing, the median of ``--rounds`` runs of: jobs per second
(wall time: depends on the machine's load, printed first), the client's CPU time per
job (``time.process_time``) and Redis's (``INFO cpu``) and the EVALSHA calls it
counted (``INFO commandstats``): these two are what each way costs the server,
whatever the load. The results go to ``<output>/async_producer.json``, and the
report's "asyncio producer" section (``<output>/benchmarks.md``, report_async.py) is
written again from them when ``<output>/benchmarks.json`` is there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import redis

from pyresque import AsyncResque, Enqueued, Events, Resque
from pyresque.dev.server import RedisServer

Run = Callable[[int], Awaitable[None] | None]


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))


def measure(client: redis.Redis, run: Run, jobs: int) -> tuple[float, float, float, float]:
    """(jobs/s, client CPU us/job, Redis CPU us/job, EVALSHA calls/job) of one run."""
    client.delete("bench:queue:q")
    cpu, server, calls = time.process_time(), server_cpu(client), evalsha_calls(client)
    start = time.perf_counter()
    pending = run(jobs)
    if pending is not None:
        asyncio.run(pending)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    assert client.llen("bench:queue:q") == jobs
    return (
        jobs / wall,
        (time.process_time() - cpu) / jobs * 1e6,
        (server_cpu(client) - server) / jobs * 1e6,
        (evalsha_calls(client) - calls) / jobs,
    )


def ways(url: str) -> dict[str, Run]:
    sync = Resque(url, "bench", events=Events())

    def sync_one(n: int) -> None:
        for i in range(n):
            sync.enqueue("q", "Job", {"i": i})

    def sync_many(n: int) -> None:
        sync.enqueue_many([Enqueued("q", "Job", [{"i": i}]) for i in range(n)])

    async def async_one(n: int) -> None:
        async with AsyncResque(url, "bench", events=Events()) as resque:
            for i in range(n):
                await resque.enqueue("q", "Job", {"i": i})

    async def async_concurrent(n: int) -> None:
        # 50 tasks at once, as 50 concurrent requests of a web app would.
        async with AsyncResque(url, "bench", events=Events()) as resque:

            async def task(start: int) -> None:
                for i in range(start, n, 50):
                    await resque.enqueue("q", "Job", {"i": i})

            await asyncio.gather(*(task(s) for s in range(50)))

    async def async_many(n: int) -> None:
        async with AsyncResque(url, "bench", events=Events()) as resque:
            await resque.enqueue_many([Enqueued("q", "Job", [{"i": i}]) for i in range(n)])

    return {
        "Resque.enqueue": sync_one,
        "AsyncResque.enqueue (awaited one by one)": async_one,
        "AsyncResque.enqueue (50 tasks at once)": async_concurrent,
        "Resque.enqueue_many": sync_many,
        "AsyncResque.enqueue_many": async_many,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("docs"))
    options = parser.parse_args()
    meta = {
        "command": " ".join(["benchmarks/async_producer.py", *sys.argv[1:]]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jobs": options.jobs,
        "rounds": options.rounds,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    rows = []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        print("| way | jobs/s (wall) | client CPU us/job | Redis CPU us/job | EVALSHA/job |")
        print("|---|---:|---:|---:|---:|")
        for name, run in ways(server.url).items():
            jobs = options.jobs * (10 if "many" in name else 1)
            rounds = [measure(client, run, jobs) for _ in range(options.rounds)]
            medians = [statistics.median(r[k] for r in rounds) for k in range(4)]
            rate, cpu, redis_cpu, calls = medians
            print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {redis_cpu:.1f} | {calls:.3f} |")
            fields = ("rate", "client_cpu_us", "redis_cpu_us", "evalsha")
            rows.append({"way": name, **dict(zip(fields, medians, strict=True))})
    meta["load_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    options.output.mkdir(parents=True, exist_ok=True)
    out = options.output / "async_producer.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"[results] {out}")
    if (options.output / "benchmarks.json").exists():
        sys.path.insert(0, str(Path(__file__).parent))
        import report

        report.write_markdown(options.output / "benchmarks.json", options.output)
        print(f"[report] {options.output / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
