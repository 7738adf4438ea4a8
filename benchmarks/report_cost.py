"""The report's "Redis cost per job" section: what one job costs the Redis server.

Every worker of a deployment shares one single-threaded Redis, so the server's CPU
time per job, not a worker's speed, caps a deployment. Per system and mode: the
server's CPU per job at enqueue (one call per job) and while the workers drain no-op
jobs (``INFO cpu``, measure.py), their sum against the bare pair (``lpush`` +
``brpop`` floors of the same round), the time in EVAL/EVALSHA, Redis commands per job
on the worker side, and the implied ceiling of one Redis: 1 s / the CPU per job.
"""

from __future__ import annotations

from typing import Any


def _enqueue_cost(res: Any, system: str, field: str) -> float | None:
    for sy, mode, _ in res.rows("enqueue"):
        if sy == system:
            value = res.extra(("enqueue", sy, mode, 1), field)
            return None if value is None else float(value)
    return None


def section(res: Any, table: Any, label: Any) -> list[str]:
    """The section's lines (none when no round measured the Redis CPU)."""
    floor_pop = res.extra(("floor", "floor", "brpop", 1), "redis_cpu_us")
    floor_push = res.extra(("floor", "floor", "lpush", 1), "redis_cpu_us")
    pair = floor_pop + floor_push if floor_pop and floor_push else None
    rows = []
    for system, mode, workers in res.rows("drain"):
        if workers != 1:
            continue
        work = res.extra(("drain", system, mode, 1), "redis_cpu_us")
        if work is None:
            continue
        enqueue = _enqueue_cost(res, system, "redis_cpu_us")
        total = work + enqueue if enqueue is not None else None
        evals = res.extra(("drain", system, mode, 1), "eval_us")
        enqueue_evals = _enqueue_cost(res, system, "eval_us")
        commands = res.extra(("drain", system, mode, 1), "commands_per_job")
        rows.append(
            [
                label(system, mode),
                _us(enqueue),
                _us(work),
                _us(total),
                f"{total / pair:.2f}x" if total and pair else "n/a",
                _us((evals or 0) + (enqueue_evals or 0)) if evals is not None else "n/a",
                f"{commands:.1f}" if commands is not None else "n/a",
                f"{1e6 / total:,.0f}" if total else "n/a",
            ]
        )
    if not rows:
        return MEASURED
    headers = [
        "system / mode",
        "enqueue (µs)",
        "drain (µs)",
        "per job (µs)",
        "of the bare pair",
        "EVAL time (µs)",
        "commands (worker)",
        "one Redis's ceiling (jobs/s)",
    ]
    pair_text = f"{pair:.1f} µs (LPUSH {floor_push:.1f} + BRPOP {floor_pop:.1f})" if pair else "n/a"
    return [
        "## Redis cost per job",
        "",
        "The Redis server's own CPU time (`used_cpu_user + used_cpu_sys`, `INFO cpu`) per "
        "job: at enqueue (one call per job) and while one worker drains no-op jobs "
        "(between the 5% mark and the last job, the worker's heartbeats included), against "
        f"a bare LPUSH + BRPOP pair in the same rounds: {pair_text}. EVAL time is the "
        "time `INFO commandstats` counts in EVAL/EVALSHA per job (the commands a script "
        "runs included). The ceiling is 1 s divided by the CPU per job: what one Redis "
        "core could serve if nothing else ran.",
        "",
        table(headers, rows),
        "",
    ]


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


#: Until a full run measures it (the rounds behind docs/benchmarks.json predate it),
#: the section shows the run that first did, kept by hand with its command and load.
MEASURED = [
    "## Redis cost per job",
    "",
    "Not in this run's rounds yet: measured in a run of its own, `bash benchmarks/run.sh "
    "--rounds 1 --workloads enqueue,drain,pickup` (2026-12-06, 1 round, the same 2-vCPU "
    "machine while other test suites loaded it: load average 22 at start, 14 at end). The "
    "Redis server's own CPU time (`INFO cpu`) per job at enqueue (one call per job) and "
    "while one worker drains no-op jobs, against a bare LPUSH + BRPOP pair of the same "
    "round: 81.3 µs (LPUSH 52.0 + BRPOP 29.3); EVAL time from `INFO commandstats`; the "
    "ceiling is 1 s divided by the CPU per job. One round on a loaded machine: read the "
    "ratios, not the microseconds. `python benchmarks/redis_cost.py` measures pyresque "
    "alone against the pair in one process, and `python benchmarks/saturation.py` many "
    "workers against one Redis ([scaling.md](scaling.md#what-limits-one-redis)).",
    "",
    "| system / mode | enqueue (µs) | drain (µs) | per job (µs) | of the bare pair "
    "| EVAL time (µs) | commands (worker) | one Redis's ceiling (jobs/s) |",
    "|---|---|---|---|---|---|---|---|",
    "| pyresque fork | 43.0 | 348.5 | 391.5 | 4.81x | 185.2 | 15.3 | 2,554 |",
    "| pyresque inline | 43.0 | 112.4 | 155.4 | 1.91x | 90.6 | 10.1 | 6,433 |",
    "| pyresque threads | 43.0 | 70.4 | 113.5 | 1.40x | 62.9 | 11.5 | 8,814 |",
    "| pyresque asyncio | 43.0 | 60.2 | 103.3 | 1.27x | 56.5 | 13.3 | 9,685 |",
    "| pyresque prefork | 43.0 | 61.7 | 104.7 | 1.29x | 55.5 | 10.6 | 9,551 |",
    "| rq fork | 100.0 | 1450.9 | 1550.9 | 19.07x | 0.0 | 63.2 | 645 |",
    "| rq simple | 100.0 | 1607.7 | 1707.7 | 21.00x | 0.0 | 55.5 | 586 |",
    "| celery solo | 91.5 | 238.1 | 329.6 | 4.05x | 0.0 | 9.1 | 3,034 |",
    "| celery prefork | 91.5 | 189.2 | 280.8 | 3.45x | 0.0 | 9.1 | 3,562 |",
    "| celery threads | 91.5 | 274.2 | 365.7 | 4.50x | 0.0 | 9.0 | 2,734 |",
    "| dramatiq threads | 61.4 | 68.3 | 129.7 | 1.59x | 108.4 | 6.6 | 7,711 |",
    "| huey thread | 52.1 | 76.4 | 128.5 | 1.58x | 0.0 | 3.1 | 7,780 |",
    "| huey process | 52.1 | 144.9 | 197.0 | 2.42x | 0.0 | 3.0 | 5,076 |",
    "| arq asyncio | 127.8 | 246.0 | 373.9 | 4.60x | 0.0 | 17.2 | 2,675 |",
    "| taskiq stream | 77.4 | 58.2 | 135.6 | 1.67x | 0.2 | 1.1 | 7,376 |",
    "| saq asyncio | 102.4 | 138.4 | 240.8 | 2.96x | 50.4 | 10.1 | 4,153 |",
    "",
]
