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
        return []
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
