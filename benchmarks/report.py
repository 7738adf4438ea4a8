"""docs/benchmarks.md and docs/benchmarks.png from the raw results (benchmarks.json).

Every number is the median over rounds. A ratio ("x BRPOP floor", "vs RQ") is
the median of the per-round ratios of two measurements taken in the same
round, which cancels most of the machine's drift between rounds.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import report_async
import report_cost

Key = tuple[str, str, str, int]  # workload, system, mode, workers
IDEAL_SLEEP = 0.010
#: The modes the fork floor bounds.
FORK_PER_JOB = {("pyresque", "fork"), ("rq", "fork")}


@dataclass
class Results:
    data: dict[str, Any]

    def __post_init__(self) -> None:
        self.by_key: dict[Key, dict[int, dict[str, Any]]] = defaultdict(dict)
        for m in self.data["measurements"]:
            key = (m["workload"], m["system"], m["mode"], m["workers"])
            self.by_key[key][m["round"]] = m["result"]

    def values(self, key: Key, field: str = "rate") -> dict[int, float]:
        return {r: float(res[field]) for r, res in self.by_key.get(key, {}).items() if field in res}

    def median(self, key: Key, field: str = "rate") -> float | None:
        vals = list(self.values(key, field).values())
        return statistics.median(vals) if vals else None

    def spread(self, key: Key, field: str = "rate") -> tuple[float, float] | None:
        vals = list(self.values(key, field).values())
        return (min(vals), max(vals)) if vals else None

    def error(self, key: Key) -> str | None:
        results = self.by_key.get(key, {})
        errors = [r["error"] for r in results.values() if "error" in r]
        if errors and len(errors) == len(results):
            return str(errors[0])
        return None

    def ratio(self, a: Key, b: Key, field: str = "rate") -> float | None:
        """Median over rounds of a/b, for rounds where both were measured."""
        va, vb = self.values(a, field), self.values(b, field)
        pairs = [va[r] / vb[r] for r in va if r in vb and vb[r] > 0]
        return statistics.median(pairs) if pairs else None

    def extra(self, key: Key, field: str) -> Any:
        """A field of the measurement's results (median where numeric)."""
        found = [r[field] for r in self.by_key.get(key, {}).values() if field in r]
        if not found:
            return None
        if all(isinstance(v, (int, float)) for v in found):
            return statistics.median(found)
        return found[-1]

    def rows(self, workload: str) -> list[tuple[str, str, int]]:
        seen = []
        order = list(self.data["systems"])
        for key in self.by_key:
            if key[0] == workload and (key[1], key[2], key[3]) not in seen:
                seen.append((key[1], key[2], key[3]))
        return sorted(seen, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[2]))


def floor(workload_mode: str) -> Key:
    return ("floor", "floor", workload_mode, 1)


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_x(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else (f"{value:.2f}" if value < 10 else f"{value:.0f}")


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def label(system: str, mode: str) -> str:
    return system if mode in ("", "default") else f"{system} {mode}"


def spread_text(res: Results, key: Key, field: str = "rate") -> str:
    sp = res.spread(key, field)
    if sp is None or len(res.values(key, field)) < 2:
        return ""
    return f"{fmt_rate(sp[0])} to {fmt_rate(sp[1])}"


def cell(res: Results, key: Key, field: str = "rate") -> str:
    value = res.median(key, field)
    if value is None:
        err = res.error(key)
        return f"failed: {err[:80]}" if err else "n/a"
    partial = any(r.get("partial") for r in res.by_key[key].values())
    return fmt_rate(value) + ("*" if partial else "")


# --- targets ---------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    measured: str
    ok: bool | None


def targets(res: Results) -> list[Target]:
    found: list[Target] = []

    def add(
        name: str, value: float | None, want: float, show: Callable[[float | None], str]
    ) -> None:
        found.append(Target(name, show(value), None if value is None else value >= want))

    py = "pyresque"
    add(
        "fork mode >= 80% of the bare fork+exit+wait loop (drain, 1 worker)",
        res.ratio(("drain", py, "fork", 1), floor("fork")),
        0.8,
        fmt_pct,
    )
    add(
        "inline >= 10x RQ SimpleWorker (drain, 1 worker)",
        res.ratio(("drain", py, "inline", 1), ("drain", "rq", "simple", 1)),
        10,
        fmt_x,
    )
    add(
        "inline >= Huey (drain, 1 worker, huey's default thread consumer)",
        res.ratio(("drain", py, "inline", 1), ("drain", "huey", "thread", 1)),
        1,
        fmt_x,
    )
    add(
        "inline >= 50% of the BRPOP floor (drain, 1 worker)",
        res.ratio(("drain", py, "inline", 1), floor("brpop")),
        0.5,
        fmt_pct,
    )
    for mode in ("threads", "asyncio"):
        for peer, peer_mode in (("taskiq", "stream"), ("saq", "asyncio")):
            add(
                f"{mode} >= {peer} on 10 ms jobs, 10 at once",
                res.ratio(("io", py, mode, 1), ("io", peer, peer_mode, 1)),
                1,
                fmt_x,
            )
    add(
        "enqueue per call >= 80% of bare LPUSH",
        _any_mode(res, "enqueue", "lpush"),
        0.8,
        fmt_pct,
    )
    add(
        "enqueue_many >= 50% of pipelined LPUSH",
        _any_mode(res, "bulk", "lpush_pipelined"),
        0.5,
        fmt_pct,
    )
    p50 = res.median(("pickup", py, "inline", 1), "p50_ms")
    p99 = res.median(("pickup", py, "inline", 1), "p99_ms")
    f50 = res.median(floor("pickup"), "p50_ms")
    f99 = res.median(floor("pickup"), "p99_ms")
    found.append(
        Target(
            "idle pickup p50 <= 1 ms (inline)",
            f"{_ms(p50)} (bare BRPOP process: {_ms(f50)})",
            None if p50 is None else p50 <= 1,
        )
    )
    found.append(
        Target(
            "idle pickup p99 <= 5 ms (inline)",
            f"{_ms(p99)} (bare BRPOP process: {_ms(f99)})",
            None if p99 is None else p99 <= 5,
        )
    )
    add(
        "+1 ms RTT: inline >= 5x RQ SimpleWorker (no-op drain)",
        res.ratio(("proxy_drain", py, "inline", 1), ("proxy_drain", "rq", "simple", 1)),
        5,
        fmt_x,
    )
    add(
        "+1 ms RTT: fork >= 5x RQ Worker (no-op drain)",
        res.ratio(("proxy_drain", py, "fork", 1), ("proxy_drain", "rq", "fork", 1)),
        5,
        fmt_x,
    )
    add(
        "+1 ms RTT: threads >= 5x RQ SimpleWorker (10 ms jobs)",
        res.ratio(("proxy_io", py, "threads", 1), ("proxy_io", "rq", "simple", 1)),
        5,
        fmt_x,
    )
    return found


def _any_mode(res: Results, workload: str, floor_mode: str) -> float | None:
    for system, mode, workers in res.rows(workload):
        if system == "pyresque":
            return res.ratio((workload, system, mode, workers), floor(floor_mode))
    return None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


# --- markdown ---------------------------------------------------------------------------


def markdown(res: Results, async_producer: dict[str, Any] | None = None) -> str:
    meta = res.data["meta"]
    machine = meta["machine"]
    systems = res.data["systems"]
    out: list[str] = ["# Benchmarks: pyresque, its peers and the physical floors", ""]
    out.append(
        "Generated by `benchmarks/bench.py` (do not edit by hand: rerun it). "
        "Every number is the **median over rounds**; each measurement ran in a fresh process, "
        "systems alternating within each round. Ratios are medians of per-round ratios of "
        "measurements taken in the same round. Raw results: [benchmarks.json](benchmarks.json)."
    )
    out += ["", "![benchmark chart](benchmarks.png)", "", "## Run", ""]
    load_end = machine.get("loadavg_end")
    out.append(
        table(
            ["", ""],
            [
                ["command", f"`{meta['command']}`"],
                ["date", f"{meta['started']} → {meta.get('finished', 'unfinished')}"],
                ["rounds", str(meta["rounds"]) + (" (quick)" if meta["quick"] else "")],
                [
                    "machine",
                    f"{machine['nproc']} vCPU, {machine['cpu']}, {machine['memory_gib']} GiB",
                ],
                ["kernel", machine["kernel"]],
                ["Python", machine["python"]],
                ["Redis", machine["redis_server"]],
                [
                    "load average",
                    f"{_load(machine.get('loadavg_start'))} at start, {_load(load_end)} at end",
                ],
                ["wall time", f"{meta.get('elapsed_s', '?')} s of measuring"],
            ],
        )
    )
    out += [
        "",
        "The machine is shared (other engineers' test suites ran meanwhile), so absolute "
        "numbers drift between rounds; the spread columns show by how much. Compare ratios.",
        "",
        *_before_after(res),
        "## Systems",
        "",
    ]
    rows = []
    for name, info in systems.items():
        if info["status"] != "ok":
            rows.append([name, "", "", f"**{info['status']}**"])
            continue
        for mode in info["modes"]:
            rows.append(
                [name, info["version"], mode["name"], f"{mode['summary']}: `{mode['command']}`"]
            )
    out += [table(["system", "version", "mode", "workers started as"], rows), ""]
    out.append(
        "Each job's only work is to record that it ran: one `os.write` of its `time.time()` "
        "as a fixed-width line to a results file opened `O_APPEND` (once per process, so a "
        "forked child opens its own), the same few microseconds for every system and no Redis "
        "command; the 10 ms job first sleeps (`time.sleep`, or `asyncio.sleep` for asyncio "
        "systems and pyresque's asyncio mode). The BRPOP and fork floors run the same record "
        "step. A drain fills the queue first, then starts the workers, waits until the file "
        "holds every job's line, and times the jobs between the 5% mark and the last one "
        "(each stamped by the job itself), so worker "
        'start-up is not counted. "2 workers" is 2 processes where the system runs one per '
        "worker (pyresque `--count 2`, two `rq worker`s, two solo celery workers, arq) and the "
        "system's own worker-count option otherwise (celery `--concurrency 2`, dramatiq "
        "`--processes 2`, huey `--workers 2`, taskiq/saq `--workers 2`, pyresque prefork "
        "`--concurrency 2`). A value marked * did not finish in its time window and is the "
        "rate over the window."
    )
    out += ["", "## Floors", ""]
    out.append(
        table(
            ["floor", "ops/s (median)", "spread over rounds", "what it bounds"],
            [
                [
                    "bare redis-py BRPOP loop",
                    cell(res, floor("brpop")),
                    spread_text(res, floor("brpop")),
                    "a worker taking one job per round trip",
                ],
                [
                    "bare LPUSH loop",
                    cell(res, floor("lpush")),
                    spread_text(res, floor("lpush")),
                    "enqueue per call",
                ],
                [
                    "pipelined LPUSH",
                    cell(res, floor("lpush_pipelined")),
                    spread_text(res, floor("lpush_pipelined")),
                    "bulk enqueue",
                ],
                [
                    "bare os.fork()+_exit+waitpid loop (in a process the size of a worker)",
                    cell(res, floor("fork")),
                    spread_text(res, floor("fork")),
                    "fork-per-job",
                ],
                [
                    "the same loop in a bare interpreter (`python -S`), for reference",
                    cell(res, floor("fork_bare")),
                    spread_text(res, floor("fork_bare")),
                    "forking the smallest process Python makes",
                ],
            ],
        )
    )
    out += ["", "## Enqueue", ""]
    rows = []
    for system, mode, _ in res.rows("enqueue"):
        key = ("enqueue", system, mode, 1)
        bulk = ("bulk", system, mode, 1)
        rows.append(
            [
                system,
                cell(res, key),
                fmt_pct(res.ratio(key, floor("lpush"))),
                cell(res, bulk) if bulk in res.by_key else "—",
                fmt_pct(res.ratio(bulk, floor("lpush_pipelined"))) if bulk in res.by_key else "—",
                systems[system].get("bulk_api", ""),
            ]
        )
    out.append(
        table(
            [
                "system",
                "per call (jobs/s)",
                "of bare LPUSH",
                "bulk (jobs/s)",
                "of pipelined LPUSH",
                "bulk API",
            ],
            rows,
        )
    )
    out += ["", "## Drain: no-op jobs", ""]
    rows = []
    for system, mode, workers in res.rows("drain"):
        if workers != 1:
            continue
        one, two = ("drain", system, mode, 1), ("drain", system, mode, 2)
        rows.append(
            [
                label(system, mode),
                cell(res, one),
                spread_text(res, one),
                fmt_pct(res.ratio(one, floor("brpop"))),
                fmt_pct(res.ratio(one, floor("fork")))
                if (system.partition("@")[0], mode) in FORK_PER_JOB
                else "",
                cell(res, two),
                _num(res.extra(one, "commands_per_job")),
            ]
        )
    out.append(
        table(
            [
                "system / mode",
                "1 worker (jobs/s)",
                "spread",
                "of BRPOP floor",
                "of fork floor",
                "2 workers (jobs/s)",
                "Redis commands/job",
            ],
            rows,
        )
    )
    out += [
        "",
        "Redis commands/job counts every command Redis executed per job, those run inside "
        "Lua scripts included (from `INFO commandstats`, between the 5% mark and the last "
        "job; the jobs themselves send none).",
        "",
        *report_cost.section(res, table, label),
        "## Pickup latency and memory (idle worker, one job at a time)",
        "",
    ]
    pickup_floor = floor("pickup")
    rows = [
        [
            "floor: a bare BRPOP loop in a process",
            fmt_ms(res.median(pickup_floor, "p50_ms")),
            fmt_ms(res.median(pickup_floor, "p99_ms")),
            _num(res.extra(pickup_floor, "samples"), 0),
            "",
            "",
            "",
        ]
    ]
    for system, mode, _ in res.rows("pickup"):
        key = ("pickup", system, mode, 1)
        mem = res.extra(key, "memory") or {}
        rows.append(
            [
                label(system, mode),
                fmt_ms(res.median(key, "p50_ms"))
                if res.median(key, "p50_ms") is not None
                else cell(res, key, "p50_ms"),
                fmt_ms(res.median(key, "p99_ms")),
                _num(res.extra(key, "samples"), 0),
                str(mem.get("processes", "")),
                _num(mem.get("rss_mib")),
                _num(mem.get("pss_mib")),
            ]
        )
    out.append(
        table(
            [
                "system / mode",
                "p50 (ms)",
                "p99 (ms)",
                "samples",
                "processes",
                "RSS (MiB)",
                "PSS (MiB)",
            ],
            rows,
        )
    )
    out += [
        "",
        "Latency is from just before the enqueue call to the job's first line (the job "
        "records `time.time()`); 5-15 ms of idle time precede each job. Memory is the "
        "worker's whole process tree after the run, 1 worker: RSS counts pages shared "
        "between its processes once per process, PSS splits them.",
        "",
        f"## I/O-bound: 10 ms jobs, {res.data['meta']['io_concurrency']} at once",
        "",
    ]
    out.append(_io_table(res, "io"))
    out += [
        "",
        "## With 1 ms of added round-trip latency",
        "",
        f"Through `benchmarks/proxy.py`, a TCP proxy delaying each direction by "
        f"{res.data['meta']['delay_ms_each_way']} ms (so 1 ms per round trip), between the "
        "system (workers and their Redis connections) and Redis; the jobs themselves do not "
        "talk to Redis. Measured PING round trip through the proxy: "
        f"{_num(_median_of(res, 'rtt_ms'), 2)} ms "
        f"(direct: {_num(_median_of(res, 'direct_rtt_ms'), 2)} ms).",
        "",
    ]
    rows = []
    rq_simple = ("proxy_drain", "rq", "simple", 1)
    for system, mode, _ in res.rows("proxy_drain"):
        key = ("proxy_drain", system, mode, 1)
        rows.append(
            [
                label(system, mode),
                cell(res, key),
                fmt_x(res.ratio(key, rq_simple)),
                _num(res.extra(key, "round_trips_per_job")),
            ]
        )
    out += [
        "### No-op jobs, 1 worker",
        "",
        table(["system / mode", "jobs/s", "vs RQ SimpleWorker", "round trips/job"], rows),
        "",
        "Round trips/job: requests the proxy carried from the system to Redis per job "
        "(a pipeline counts once), over the timed window.",
        "",
        f"### 10 ms jobs, {res.data['meta']['io_concurrency']} at once",
        "",
        _io_table(res, "proxy_io"),
        "",
        "## Targets",
        "",
    ]
    rows = []
    for t in targets(res):
        verdict = "n/a" if t.ok is None else ("**met**" if t.ok else "**missed**")
        rows.append([t.name, t.measured, verdict])
    out += [table(["target", "measured", ""], rows), ""]
    out += report_async.section(async_producer)
    out += LIMITS
    out += _observations(res)
    out += _failures(res)
    return "\n".join(out) + "\n"


#: Where targets are missed: what limits pyresque, and what would lift it (from profiles
#: and INFO commandstats of these runs; kept by hand, as it explains the numbers).
LIMITS = [
    "## What limits pyresque, and what would lift it",
    "",
    "- **Six plain commands per job, no script.** An enqueue is one pipeline (`SADD "
    "queues`, the `RPUSH`, the wake-up token's `RPUSH`); a finish and the next claim are "
    "another (`LREM` off the worker's landing list, which is the in-flight record and the "
    "fence, `SET status XX GET`, `LMOVE` of the next job), and Resque's stats are batched "
    "once a second. So the in-process and prefork modes cost Redis about what a bare LPUSH "
    "+ BRPOP pair costs (the cost table). Fork mode serves a job every few milliseconds: "
    "each command meets a cold server and Redis's own background work falls on fewer jobs, "
    "which any forking worker pays; [scaling.md](scaling.md#what-limits-one-redis) "
    "measures it against a pair whose consumer forks. Lift: each of the commands left is "
    "Resque's, the in-flight record's or a wake-up's (scaling.md says why each stays).",
    "- **Fork mode is CPU-bound** on 2 cores: per job the zygote forks a process the size "
    "of a worker and the child exits, so its drain runs at the fork loop's floor (the "
    "fork floor column) and a second worker adds little. Lift: prefork mode for short "
    "jobs (no fork per job).",
    "- **Idle pickup.** A worker of one queue waits in `BLMOVE` onto its landing list, so "
    "a job starts one round trip after its push, as in the bare BRPOP loop; inline, "
    "threads and asyncio run it in the woken process. Fork and prefork hand it to a second "
    "process: one more wake-up, and in fork mode a child whose code runs for the first time "
    'in it (scaling.md, "Fork mode"). The floor itself moves from run to run on this '
    "shared machine: compare the rows of one run.",
    "- **Enqueue per call** is one pipeline of plain commands, packed by pyresque itself "
    "(`protocol/packed.py`) on a connection held between calls: 3 commands where a bare "
    "LPUSH sends 1, and the client's Python per call is the rest. Lift: little is left in "
    "Python; a client in C.",
    "",
]


#: The before/after table's rows: workload, the field compared, what it is.
BEFORE_AFTER = [
    ("enqueue", "rate", "enqueue per call (jobs/s)"),
    ("bulk", "rate", "enqueue_many (jobs/s)"),
    ("drain", "rate", "drain, no-op jobs (jobs/s)"),
    ("pickup", "p50_ms", "idle pickup p50 (ms)"),
    ("pickup", "p99_ms", "idle pickup p99 (ms)"),
    ("io", "rate", "10 ms jobs (jobs/s)"),
    ("proxy_drain", "rate", "+1 ms RTT, no-op jobs (jobs/s)"),
    ("proxy_io", "rate", "+1 ms RTT, 10 ms jobs (jobs/s)"),
]


def _before_after(res: Results) -> list[str]:
    """pyresque (after) against pyresque@REF (before), where --baseline REF was given."""
    baseline = res.data["meta"].get("baseline")
    if not baseline:
        return []
    before = baseline["system"]
    rows = []
    for workload, field, what in BEFORE_AFTER:
        for system, mode, workers in res.rows(workload):
            if system != "pyresque":
                continue
            after_key: Key = (workload, system, mode, workers)
            before_key: Key = (workload, before, mode, workers)
            va, vb = res.values(after_key, field), res.values(before_key, field)
            show = fmt_ms if field.endswith("_ms") else fmt_rate
            rows.append(
                [
                    what,
                    mode + (f" x{workers}" if workers > 1 else ""),
                    show(res.median(before_key, field)),
                    show(res.median(after_key, field)),
                    _num(res.ratio(after_key, before_key, field), 2),
                    ", ".join(f"{va[r] / vb[r]:.2f}" for r in sorted(va) if vb.get(r)),
                    _counted(res, before_key, after_key, "commands_per_job", 1),
                    _counted(res, before_key, after_key, "round_trips_per_job", 2),
                ]
            )
    return [
        f"## Before/after: pyresque against `{before}`",
        "",
        f"Before: `{before}` (commit {baseline['commit'][:10]}), pyresque from that commit's "
        "`src`, workers started as `python -m pyresque.cli`. After: this tree "
        f"({baseline['head']}). Each measurement of one ran right after the same one of the "
        "other, in every round; the ratio is the median of the per-round ratios (rates: "
        "above 1 is faster after; latencies: below 1 is). Redis commands and proxied round "
        "trips per job (medians, before → after) do not drift with the machine's load.",
        "",
        table(
            [
                "workload",
                "mode",
                "before",
                "after",
                "after / before",
                "per round",
                "Redis commands/job",
                "round trips/job",
            ],
            rows,
        ),
        "",
    ]


def _counted(res: Results, before: Key, after: Key, field: str, digits: int) -> str:
    """A count per job (the machine's load does not move it), before -> after."""
    b, a = res.extra(before, field), res.extra(after, field)
    return "" if a is None or b is None else f"{_num(b, digits)} → {_num(a, digits)}"


def _observations(res: Results) -> list[str]:
    """What the numbers say about where the time goes, in sentences made from them."""
    lines = []
    drift = [
        f"{name} {fmt_rate(sp[0])} to {fmt_rate(sp[1])}/s"
        for name in ("brpop", "fork")
        if (sp := res.spread(floor(name))) and len(res.values(floor(name))) > 1
    ]
    if drift:
        lines.append(f"- Drift: across rounds the floors ranged {', '.join(drift)}.")
    trips = {
        label(sy, mo): v
        for sy, mo, _ in res.rows("proxy_drain")
        if (v := res.extra(("proxy_drain", sy, mo, 1), "round_trips_per_job")) is not None
    }
    mine = {k: v for k, v in trips.items() if k.startswith("pyresque")}
    peers = sorted((v, k) for k, v in trips.items() if not k.startswith("pyresque"))
    if mine and peers:
        lines.append(
            "- Round trips per no-op job (through the proxy): "
            + ", ".join(f"{k} {v:.1f}" for k, v in mine.items())
            + "; peers: "
            + ", ".join(f"{k} {v:.1f}" for v, k in peers)
            + ". At 1 ms per round trip these set the ceiling of a worker that runs one job "
            "at a time."
        )
    commands = {
        label(sy, mo): (v, res.extra(("drain", sy, mo, 1), "top_commands") or {})
        for sy, mo, w in res.rows("drain")
        if w == 1 and (v := res.extra(("drain", sy, mo, 1), "commands_per_job")) is not None
    }
    inline = commands.get("pyresque inline")
    if inline:
        top = ", ".join(f"{k} {v:g}" for k, v in list(inline[1].items())[:6])
        others = sorted((v[0], k) for k, v in commands.items() if not k.startswith("pyresque"))
        lines.append(
            f"- Redis commands per job, Lua included: pyresque inline {inline[0]:.0f} "
            f"(most: {top}); peers: " + ", ".join(f"{k} {v:.0f}" for v, k in others) + "."
        )
    return ["## Observations", "", *lines, ""] if lines else []


def _io_table(res: Results, workload: str) -> str:
    rows = []
    ideal = None
    for system, mode, _ in res.rows(workload):
        key = (workload, system, mode, 1)
        conc = next(
            (
                m["concurrency"]
                for m in res.data["measurements"]
                if (m["workload"], m["system"], m["mode"]) == key[:3]
            ),
            None,
        )
        ideal = (conc or 1) / IDEAL_SLEEP
        value = res.median(key)
        rows.append(
            [
                label(system, mode),
                str(conc),
                cell(res, key),
                fmt_pct(value / ideal if value else None),
                fmt_x(res.ratio(key, (workload, "rq", "simple", 1))),
            ]
        )
    return table(
        ["system / mode", "at once", "jobs/s", "of ideal (at once / 10 ms)", "vs RQ SimpleWorker"],
        rows,
    )


def _median_of(res: Results, field: str) -> float | None:
    found = [m["result"][field] for m in res.data["measurements"] if field in m.get("result", {})]
    return statistics.median(found) if found else None


def _failures(res: Results) -> list[str]:
    lines = []
    for m in res.data["measurements"]:
        err = m["result"].get("error")
        if err:
            lines.append(
                f"- round {m['round'] + 1}, {m['workload']}, {label(m['system'], m['mode'])} "
                f"x{m['workers']}: {err[:300]}"
            )
    for name, info in res.data["systems"].items():
        if info["status"] != "ok":
            lines.append(f"- {name}: {info['status']}")
    if not lines:
        return ["Every measurement completed.", ""]
    return ["## Failures", "", *lines, ""]


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "n/a"
    return f"{float(value):.{digits}f}"


def _load(value: Any) -> str:
    return "n/a" if not value else " / ".join(f"{v:.2f}" for v in value)


# --- chart ---------------------------------------------------------------------------------


def _color(name: str) -> str:
    """pyresque red, a baseline of it (``pyresque@REF``) pale red, peers grey."""
    if name.startswith("pyresque@"):
        return "#f4a3a3"
    return "#d62728" if name.startswith("pyresque") else "#7f7f7f"


def chart(res: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, list[tuple[str, float]], list[tuple[str, float]], str]] = []

    def bars(workload: str, workers: int, field: str = "rate") -> list[tuple[str, float]]:
        found = []
        for system, mode, w in res.rows(workload):
            value = res.median((workload, system, mode, w), field)
            if w == workers and value is not None:
                found.append((label(system, mode), value))
        return found

    def floors(*names: tuple[str, str], field: str = "rate") -> list[tuple[str, float]]:
        return [
            (text, v) for name, text in names if (v := res.median(floor(name), field)) is not None
        ]

    enqueue = [(f"{s.split()[0]} per call", v) for s, v in bars("enqueue", 1)]
    enqueue += [(f"{s.split()[0]} bulk", v) for s, v in bars("bulk", 1)]
    panels.append(
        (
            "Enqueue (jobs/s)",
            enqueue,
            floors(("lpush", "LPUSH"), ("lpush_pipelined", "pipelined LPUSH")),
            "jobs/s",
        )
    )
    drain_floors = floors(
        ("brpop", "BRPOP"),
        ("fork", "fork"),
    )
    panels.append(("Drain no-op jobs, 1 worker", bars("drain", 1), drain_floors, "jobs/s"))
    panels.append(("Drain no-op jobs, 2 workers", bars("drain", 2), drain_floors, "jobs/s"))
    panels.append(
        (
            "Idle pickup latency p50 (ms, lower is better)",
            bars("pickup", 1, "p50_ms"),
            [("1 ms target", 1.0), *floors(("pickup", "BRPOP process"), field="p50_ms")],
            "ms",
        )
    )
    conc = res.data["meta"]["io_concurrency"]
    panels.append(
        (f"10 ms jobs, {conc} at once", bars("io", 1), [("ideal", conc / IDEAL_SLEEP)], "jobs/s")
    )
    panels.append(("+1 ms RTT: no-op jobs, 1 worker", bars("proxy_drain", 1), [], "jobs/s"))
    panels.append(
        (
            f"+1 ms RTT: 10 ms jobs, {conc} at once",
            bars("proxy_io", 1),
            [("ideal", conc / IDEAL_SLEEP)],
            "jobs/s",
        )
    )
    panels = [p for p in panels if p[1]]
    if not panels:
        return
    cols = 2
    rows = (len(panels) + 1) // cols
    height = max(len(p[1]) for p in panels) * 0.28 + 1.6
    fig, axes = plt.subplots(rows, cols, figsize=(15, rows * height), squeeze=False)
    for ax, (title, items, lines, unit) in zip(axes.flat, panels, strict=False):
        names = [n for n, _ in items][::-1]
        values = [v for _, v in items][::-1]
        colors = [_color(n) for n in names]
        ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=11, pad=8 + 9 * len(lines))
        ax.set_xlabel(unit + " (log scale)")
        ax.tick_params(axis="y", labelsize=8)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=7)
        for i, (text, value) in enumerate(lines):
            color = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"][i % 4]
            ax.axvline(value, color=color, linestyle="--", linewidth=1)
            ax.text(
                value,
                1.005 + 0.035 * i,
                f" {text}",
                fontsize=7,
                color=color,
                transform=ax.get_xaxis_transform(),
            )
        ax.margins(x=0.15)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    meta = res.data["meta"]
    fig.suptitle(
        f"pyresque (red) vs peers (grey): medians of {meta['rounds']} round(s), "
        f"{meta['machine']['nproc']} vCPU {meta['machine']['cpu']}, {meta['started'][:10]}",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(json_path: Path, output: Path) -> None:
    res = Results(json.loads(json_path.read_text()))
    output.mkdir(parents=True, exist_ok=True)
    chart(res, output / "benchmarks.png")
    write_markdown(json_path, output)


def write_markdown(json_path: Path, output: Path) -> None:
    """benchmarks.md from benchmarks.json and, when there is one, the asyncio producer's
    results beside it (async_producer.py writes them, then calls this)."""
    res = Results(json.loads(json_path.read_text()))
    async_path = json_path.parent / report_async.FILE
    async_producer = json.loads(async_path.read_text()) if async_path.exists() else None
    (output / "benchmarks.md").write_text(markdown(res, async_producer))
