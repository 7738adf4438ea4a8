"""The report's "asyncio producer" section, from what benchmarks/async_producer.py
measured and wrote (async_producer.json, next to benchmarks.json): nothing in it is
typed by hand but the explanations, and those that quote a figure compute it."""

from __future__ import annotations

from typing import Any

#: The file async_producer.py writes, in the report's directory.
FILE = "async_producer.json"

SYNC_ONE, ASYNC_ONE, ASYNC_CONCURRENT = (
    "Resque.enqueue",
    "AsyncResque.enqueue (awaited one by one)",
    "AsyncResque.enqueue (50 tasks at once)",
)


def section(data: dict[str, Any] | None) -> list[str]:
    """The section's lines; without a measurement, the command that makes one."""
    out = ["## asyncio producer", ""]
    if data is None:
        out += [
            "Not measured yet: `.venv/bin/python benchmarks/async_producer.py --rounds 5` "
            f"writes docs/{FILE} and this section.",
            "",
        ]
        return out
    meta, rows = data["meta"], {row["way"]: row for row in data["rows"]}
    load = f"{meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after"
    out += [
        f"`AsyncResque` beside `Resque`, measured by `{meta['command']}` on "
        f"{meta['started'][:10]} (medians of {meta['rounds']} rounds; {meta['jobs']:,} jobs "
        f"per round one at a time, {meta['jobs'] * 10:,} in bulk; a private Redis; 1-minute "
        f"load average {load}, on {meta['cpus']} CPUs). Wall-time rates depend on that "
        "load, and the CPU columns too, less (a busy machine's cache misses and context "
        "switches): compare the rows of one run, not runs. Raw results: "
        f"[{FILE}]({FILE}).",
        "",
        "| way | jobs/s (wall) | client CPU us/job | Redis CPU us/job | EVALSHA/job |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        out.append(
            f"| {row['way']} | {row['rate']:,.0f} | {row['client_cpu_us']:.1f} | "
            f"{row['redis_cpu_us']:.1f} | {row['evalsha']:.3f} |"
        )
    extra = rows[ASYNC_ONE]["client_cpu_us"] / rows[SYNC_ONE]["client_cpu_us"] - 1
    concurrent = rows[ASYNC_CONCURRENT]["redis_cpu_us"] / rows[SYNC_ONE]["redis_cpu_us"]
    why_client = " (the event loop and `redis.asyncio` per command)" if extra > 0 else ""
    why_redis = " (its reads carry several commands)" if concurrent < 1 else ""
    one_script = rows[SYNC_ONE]["evalsha"] >= 0.5
    scripts = (
        "a plain enqueue is one script call"
        if one_script
        else "a plain enqueue is plain commands in one pipeline, no script"
    ) + "; a bulk enqueue, one script call per 1,000 jobs"
    out += [
        "",
        "- Both build their calls with the same code (`client/producer.py`); the EVALSHA "
        f"column says how many script calls a job costs ({scripts}).",
        f"- Awaited one at a time, an enqueue costs the client {extra:+.0%} CPU against the "
        f"blocking client{why_client}. Fifty tasks enqueueing at once, as a web app's "
        "concurrent requests do, overlap their round trips; Redis then spends "
        f"{concurrent:.2f} times the CPU per job of one-at-a-time enqueues{why_redis}.",
        "",
    ]
    return out
