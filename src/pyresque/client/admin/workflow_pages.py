"""Workflows as the dashboard shows them: recent batches with their live counts
(``workflows.recent``), one batch by id, and a job's place in its workflow (what it
still waits for, what waits for it, its batches), read from the records
lib_workflow.lua writes. Anyone may write Redis: what is not such a record is said so."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from pyresque.client.admin import workflows
from pyresque.client.admin.base import Namespace, Problems
from pyresque.protocol import strict_json

#: Batches the Workflows page lists (the newest of those ``workflows.recent`` reads).
RECENT = 50
#: Dependencies or dependents of one job shown with their states.
LINKED = 50


def workflows_page(resque: Namespace, batch_id: str = "") -> dict[str, Any]:
    """``{"batch_id", "batch": the one asked for (None if absent), "batches": recent}``."""
    problems = Problems()
    one = (
        problems.section(f"batch {batch_id}", partial(workflows.batch, resque, batch_id), None)
        if batch_id
        else None
    )
    recent = problems.section(
        resque.keys.wf_batches,
        partial(workflows.recent, resque, RECENT),
        list[workflows.BatchInfo](),
    )
    return {
        "batch_id": batch_id,
        "batch": one.to_dict() if one else None,
        "batches": [info.to_dict() for info in recent],
        "problems": problems,
    }


def job_workflow(resque: Namespace, job_id: str, problems: Problems) -> dict[str, Any] | None:
    """Job ``job_id``'s workflow record as ``{"state", "waits_for", "dependents",
    "batches", "cancelled_by", "cancelled"}`` (each linked job as ``{"id", "state"}``,
    at most ``LINKED``), ``{"state": None, "raw"}`` for a record that is not one, or
    None when the job is in no workflow."""
    key = resque.keys.wf_jobs
    raw = problems.section(key, lambda: cast("bytes | None", resque.redis.hget(key, job_id)), None)
    if raw is None:
        return None
    try:
        record = strict_json.loads(raw)
    except ValueError:
        record = None
    state = workflows.state_of(raw)
    if not isinstance(record, dict) or state is None:
        return {"state": None, "raw": raw.decode("utf-8", "backslashreplace")[:2000]}
    waits, dependents = _ids(record.get("wait")), _ids(record.get("dep"))
    cancelled = _ids(record.get("cancelled"))
    linked = list(dict.fromkeys([*waits, *dependents, *cancelled]))
    states = dict(zip(linked, _states(resque, linked, problems), strict=True))
    by = record.get("by")
    return {
        "state": state,
        "waits_for": [{"id": i, "state": states[i]} for i in waits],
        "dependents": [{"id": i, "state": states[i]} for i in dependents],
        "cancelled": [{"id": i, "state": states[i]} for i in cancelled],
        "batches": _ids(record.get("b")),
        "cancelled_by": by if isinstance(by, str) else None,
    }


def _ids(value: Any) -> list[str]:
    """Job or batch ids from a record's list (or, for ``wait``, the keys of an object:
    Lua writes a table with ids as keys), at most ``LINKED``."""
    if isinstance(value, dict):
        value = list(value)
    if not isinstance(value, list):
        return []
    return [i for i in value if isinstance(i, str)][:LINKED]


def _states(resque: Namespace, ids: list[str], problems: Problems) -> list[str | None]:
    if not ids:
        return []
    key = resque.keys.wf_jobs
    missing: list[bytes | None] = [None] * len(ids)
    raws = problems.section(
        key, lambda: cast("list[bytes | None]", resque.redis.hmget(key, ids)), missing
    )
    return [workflows.state_of(raw) for raw in raws]
