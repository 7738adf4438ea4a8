"""How the admin side's costs grow with the deployment: failures, delayed items,
queues and workers (issue 14, section 2).

Each operation runs against a private Redis server (started here, on a free port)
holding N failures, delayed items, queues or workers, for growing N. For each it
reports the Redis server's own CPU time (``used_cpu_user + used_cpu_sys`` from
``INFO cpu``), the commands' execution time and count (``INFO commandstats``), the
slowest single command or script (``SLOWLOG``, threshold 0.1 ms: "<0.1" when none was
slower), and the wall time, with the machine's load (``uptime``) next to it; then the
growth factor of each figure from one size to the next (1.0 = does not grow).

Only entry points that every version has are used (the CLI, the dashboard's page
loaders, ``Resque``'s methods), so the same script measures another tree's code:
``PYTHONPATH=/path/to/other/src python benchmarks/scale.py``.

    python benchmarks/scale.py                      # sizes 1000,10000,100000
    python benchmarks/scale.py --sizes 1000,10000 --groups failures,delayed --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis
from click.testing import CliRunner

import pyresque
from pyresque import Events, Resque
from pyresque.cli.main import main as cli
from pyresque.dev.server import RedisServer
from pyresque.protocol.delayed import Delayed, item_json
from pyresque.protocol.failure import failure_record
from pyresque.protocol.payload import Payload
from pyresque.web.endpoints import PAGES

NS = "scale"
#: Commands slower than this (µs) are kept by SLOWLOG for the "slowest" column.
SLOW_US = 100
#: An operation whose wall time passed this is not run at the next size.
DEFAULT_BUDGET_S = 60.0
BACKTRACE = [f"/srv/app/lib/module_{i}.py:{100 + i}:in `step_{i}'" for i in range(20)]


@dataclass
class Figure:
    group: str
    op: str
    size: int
    redis_cpu_ms: float
    exec_ms: float
    commands: int
    slowest_ms: float | None  # None: nothing slower than SLOW_US
    wall_ms: float
    load: float
    note: str = ""


class Probe:
    """Redis-side figures of what runs inside ``with probe:``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def run(self, fn: Callable[[], Any]) -> tuple[float, float, int, float | None, float, Any]:
        c = self.client
        c.config_set("slowlog-log-slower-than", SLOW_US)
        c.config_set("slowlog-max-len", 4096)
        c.slowlog_reset()
        c.config_resetstat()
        cpu0 = self._cpu()
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
        cpu = self._cpu() - cpu0
        stats = c.info("commandstats")
        slow = c.slowlog_get(4096)
        mine = {"info", "config", "slowlog"}
        exec_us = sum(v["usec"] for k, v in stats.items() if k.removeprefix("cmdstat_") not in mine)
        calls = sum(v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_") not in mine)
        slowest = [e["duration"] for e in slow if _name(e) not in mine]
        return (
            cpu * 1000,
            exec_us / 1000,
            calls,
            max(slowest) / 1000 if slowest else None,
            wall * 1000,
            result,
        )


def _name(entry: dict[str, Any]) -> str:
    command = entry.get("command", b"")
    word = command.split()[0] if command else b""
    return (word.decode() if isinstance(word, bytes) else str(word)).lower()


def load() -> float:
    return os.getloadavg()[0]


# --- populating -----------------------------------------------------------------


def fill_failures(resque: Resque, n: int) -> None:
    """``n`` records as pyresque writes them; every 10th is of class ``Match``."""
    pipe = resque.redis.pipeline(transaction=False)
    for i in range(n):
        klass = "Match" if i % 10 == 0 else f"Job{i % 7}"
        payload = {"class": klass, "args": [{"n": i}], "id": uuid.uuid4().hex}
        record = failure_record(payload, "RuntimeError", f"boom {i}", BACKTRACE, "h:1:q", "q")
        pipe.rpush(resque.keys.failed, record)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


def fill_delayed(resque: Resque, n: int) -> list[str]:
    """``n`` items, each at its own second (the worst case for per-second costs),
    through the same script ``enqueue_at`` uses; returns their ids."""
    ids = []
    base = int(time.time()) + 86400
    pipe = resque.redis.pipeline(transaction=False)
    delayed = Delayed(pipe, resque.keys)  # type: ignore[arg-type]
    for i in range(n):
        job_id = uuid.uuid4().hex
        ids.append(job_id)
        payload = Payload("Later", [{"n": i}], job_id, "", time.time())
        # As enqueue_at schedules it (indexed by id), except every 10th: as a retry is.
        delayed.schedule(base + i, item_json(payload, "q"), job_id=job_id if i % 10 else None)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return ids


def fill_queues(resque: Resque, n: int) -> None:
    pipe = resque.redis.pipeline(transaction=False)
    for i in range(n):
        name = f"tenant-{i:06d}"
        pipe.sadd(resque.keys.queues, name)
        pipe.rpush(resque.keys.queue(name), Payload("Job", [i], None, "", time.time()).encode())
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


def fill_workers(resque: Resque, n: int) -> None:
    """``n`` workers as Ruby registers them; every other one is working."""
    pipe = resque.redis.pipeline(transaction=False)
    k = resque.keys
    for i in range(n):
        wid = f"host{i % 50}:{1000 + i}:default"
        pipe.sadd(k.workers, wid)
        pipe.set(k.worker_started(wid), "2026-01-12 15:23:55 -0500")
        pipe.hset(k.heartbeats, wid, "2026-01-12T20:23:55+00:00")
        if i % 2 == 0:
            job = {"queue": "default", "run_at": "2026-01-12T20:23:55Z", "payload": {"class": "J"}}
            pipe.set(k.worker(wid), json.dumps(job))
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


# --- operations -------------------------------------------------------------------


def cli_call(url: str, *args: str) -> str:
    result = CliRunner().invoke(
        cli, [*args, "--redis-url", url, "--namespace", NS], catch_exceptions=False
    )
    if result.exit_code != 0:
        raise RuntimeError(f"pyresque {' '.join(args)} exited {result.exit_code}: {result.output}")
    return result.output


def page(resque: Resque, name: str, **params: Any) -> Callable[[], Any]:
    return lambda: PAGES[name][1](resque, params)


def bulk_op(resque: Resque, action: str) -> Callable[[], Any]:
    """A background bulk action (client/admin/bulk.py), run to its end in this process."""
    from pyresque.client.admin import bulk  # imported here: older trees have none
    from pyresque.client.admin.failures import FailureFilter

    def run() -> Any:
        op_id = bulk.start(resque, action, FailureFilter(class_name="Match"))
        return bulk.run(resque, op_id)

    return run


def metrics_scrape(resque: Resque) -> Callable[[], Any]:
    from pyresque.web import metrics  # the web extra

    return lambda: metrics.render(resque)


def html(url: str, path: str) -> Callable[[], Any]:
    """A page as the browser gets it: the dashboard app, rendered (no network)."""
    from starlette.testclient import TestClient  # the web extra

    from pyresque.web.app import OPEN, create_app

    client = TestClient(create_app(url, namespace=NS, auth=OPEN), "http://localhost")

    def get() -> int:
        response = client.get(path)
        response.raise_for_status()
        return len(response.content)

    return get


Op = tuple[str, Callable[[Resque, str, dict[str, Any]], Callable[[], Any]]]

GROUPS: dict[str, tuple[Callable[[Resque, int], Any], list[Op]]] = {
    "failures": (
        fill_failures,
        [
            ("failed page (dashboard)", lambda r, u, s: page(r, "failed")),
            ("failed page, filtered", lambda r, u, s: page(r, "failed", **{"class": "Match"})),
            ("failed page, text search", lambda r, u, s: page(r, "failed", q="boom 12")),
            ("failed page, HTML (50 rows)", lambda r, u, s: html(u, "/failed")),
            ("failed page, HTML, text search", lambda r, u, s: html(u, "/failed?q=boom+12")),
            (
                "failed list --class (CLI)",
                lambda r, u, s: lambda: cli_call(u, "failed", "list", "--class", "Match"),
            ),
            ("count", lambda r, u, s: r.failures.count),
            ("bulk retry, background (10% match)", lambda r, u, s: bulk_op(r, "retry")),
            (
                "failed remove --class (10% match)",
                lambda r, u, s: lambda: cli_call(u, "failed", "remove", "--class", "Match"),
            ),
        ],
    ),
    "delayed": (
        fill_delayed,
        [
            ("delayed page (dashboard)", lambda r, u, s: page(r, "delayed")),
            ("delayed list (CLI)", lambda r, u, s: lambda: cli_call(u, "delayed", "list")),
            (
                "remove_delayed(job_id=)",
                lambda r, u, s: lambda: r.remove_delayed(job_id=s["ids"][len(s["ids"]) // 2 + 1]),
            ),
            (
                "remove_delayed(job_id=), unindexed",
                lambda r, u, s: (
                    lambda: r.remove_delayed(job_id=s["ids"][len(s["ids"]) // 2 // 10 * 10])
                ),
            ),
            (
                "delayed cancel --id (CLI)",
                lambda r, u, s: (
                    lambda: cli_call(u, "delayed", "cancel", "--id", s["ids"][len(s["ids"]) // 3])
                ),
            ),
        ],
    ),
    "queues": (
        fill_queues,
        [
            ("overview page", lambda r, u, s: page(r, "overview")),
            ("queues page", lambda r, u, s: page(r, "queues")),
            ("stats page", lambda r, u, s: page(r, "stats")),
            ("info (CLI)", lambda r, u, s: lambda: cli_call(u, "info")),
            ("/metrics", lambda r, u, s: metrics_scrape(r)),
            (
                "forget-idle-queues (CLI)",
                lambda r, u, s: lambda: cli_call(u, "forget-idle-queues", "--idle", "0"),
            ),
        ],
    ),
    "workers": (
        fill_workers,
        [
            ("overview page", lambda r, u, s: page(r, "overview")),
            ("workers page", lambda r, u, s: page(r, "workers")),
            ("info (CLI)", lambda r, u, s: lambda: cli_call(u, "info")),
            ("workers (CLI)", lambda r, u, s: lambda: cli_call(u, "workers")),
            ("/metrics", lambda r, u, s: metrics_scrape(r)),
        ],
    ),
}


def run(sizes: list[int], groups: list[str], budget: float) -> list[Figure]:
    figures: list[Figure] = []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        resque = Resque(server.url, namespace=NS, events=Events())
        probe = Probe(client)
        for group in groups:
            fill, ops = GROUPS[group]
            over_budget: set[str] = set()
            for size in sizes:
                for name, make in ops:
                    if name in over_budget:
                        figures.append(
                            Figure(group, name, size, 0, 0, 0, None, 0, load(), "skipped")
                        )
                        continue
                    client.flushall()  # our own server: each operation starts from N items
                    state: dict[str, Any] = {"ids": fill(resque, size)}
                    cpu, exec_ms, calls, slowest, wall, _ = probe.run(
                        make(resque, server.url, state)
                    )
                    fig = Figure(group, name, size, cpu, exec_ms, calls, slowest, wall, load())
                    figures.append(fig)
                    print(_row(fig), file=sys.stderr, flush=True)
                    if wall / 1000 > budget:
                        over_budget.add(name)
        client.close()
    return figures


def _ms(value: float | None) -> str:
    return "<0.1" if value is None else f"{value:,.1f}"


def _row(f: Figure) -> str:
    if f.note:
        return f"| {f.group} | {f.op} | {f.size:,} | {f.note} | | | | | |"
    return (
        f"| {f.group} | {f.op} | {f.size:,} | {f.redis_cpu_ms:,.1f} | {f.exec_ms:,.1f} | "
        f"{f.commands:,} | {_ms(f.slowest_ms)} | {f.wall_ms:,.1f} | {f.load:.2f} |"
    )


def report(figures: list[Figure]) -> str:
    lines = [
        f"pyresque {pyresque.__version__} from {os.path.dirname(pyresque.__file__)}",
        "",
        "| group | operation | N | Redis CPU ms | exec ms | commands | slowest ms | wall ms "
        "| load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(f) for f in figures),
        "",
        "Growth from one size to the next (x10 items): Redis CPU, commands, wall",
        "",
        "| group | operation | sizes | CPU | commands | wall |",
        "|---|---|---|---:|---:|---:|",
    ]
    by_op: dict[tuple[str, str], list[Figure]] = {}
    for f in figures:
        if not f.note:
            by_op.setdefault((f.group, f.op), []).append(f)
    for (group, op), fs in by_op.items():
        for a, b in itertools.pairwise(fs):
            cpu = _ratio(b.redis_cpu_ms, a.redis_cpu_ms)
            lines.append(
                f"| {group} | {op} | {a.size:,}→{b.size:,} | {cpu} "
                f"| {_ratio(b.commands, a.commands)} | {_ratio(b.wall_ms, a.wall_ms)} |"
            )
    return "\n".join(lines)


def _ratio(b: float, a: float) -> str:
    return f"{b / a:.1f}" if a > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="skip an operation at bigger sizes once it took this many seconds",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    figures = run(sizes, args.groups.split(","), args.budget)
    print(report(figures))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(f) for f in figures], out, indent=1)


if __name__ == "__main__":
    main()
