"""One job by id, as the dashboard's Job page shows it: its status packet (when it is
tracked), its last progress, its result record (when it stores one) and the time left
before that expires. Each is read as whatever the key holds: what is not a record of
its kind is said so, never trusted."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, cast

from pyresque.client.admin.base import Namespace, Problems, as_text, shorten
from pyresque.client.admin.workflow_pages import job_workflow
from pyresque.protocol.progress import Progress
from pyresque.protocol.results import ResultRecord
from pyresque.protocol.slots import job_slot
from pyresque.protocol.status import JobStatus


def job_page(resque: Namespace, job_id: str) -> dict[str, Any]:
    """``{"id", "status", "progress", "result", "workflow", "problems"}``; a part the
    job does not have (untracked, no progress reported, no result stored or expired,
    in no workflow: ``workflow_pages.job_workflow``) is None."""
    problems = Problems()
    keys = resque.keys
    if not job_id:
        return {
            "id": "",
            **dict.fromkeys(("status", "progress", "result", "workflow")),
            "problems": problems,
        }
    # On Cluster the status and result are in the job's queue's slot, the progress at home.
    at = problems.section(f"job {job_id}", partial(job_slot, resque.redis, keys, job_id), None)
    at = at or keys
    pipe = resque.redis.pipeline(transaction=False)
    pipe.get(at.status(job_id))
    pipe.get(keys.progress(job_id))
    pipe.get(at.result(job_id))
    pipe.ttl(at.result(job_id))
    names = [at.status(job_id), keys.progress(job_id), at.result(job_id), at.result(job_id)]
    packet, progress, result, ttl = problems.section(
        f"job {job_id}", lambda: problems.replies(pipe, names), [None] * 4
    )
    return {
        "id": job_id,
        "status": None if packet is None else _status(cast("bytes", packet)),
        "progress": None if progress is None else _progress(cast("bytes", progress)),
        "result": None if result is None else _result(cast("bytes", result), ttl),
        "workflow": job_workflow(resque, job_id, problems),
        "problems": problems,
    }


def _status(raw: bytes) -> dict[str, Any]:
    packet = JobStatus.decode(raw)
    if packet is None:
        return {"state": None, "raw": shorten(as_text(raw))}
    return {
        "state": packet.status.name.lower(),
        "updated": packet.updated or None,
        "started": packet.started,
        "result_text": None if packet.result is None else _json_text(packet.result),
    }


def _progress(raw: bytes) -> dict[str, Any]:
    progress = Progress.decode(raw)
    if progress is None:
        return {"fraction": None, "raw": shorten(as_text(raw))}
    return {
        "fraction": progress.fraction,
        "message": progress.message,
        "updated": progress.updated,
    }


def _result(raw: bytes, ttl: Any) -> dict[str, Any]:
    expires_in = ttl if isinstance(ttl, int) and ttl >= 0 else None
    try:
        record = ResultRecord.decode(raw)
    except ValueError as exc:
        return {"state": None, "reason": str(exc), "raw": shorten(as_text(raw))}
    return {
        "state": record.status,
        "value_text": _json_text(record.value) if record.status == "ok" else None,
        "exception": record.exception,
        "error": record.error,
        "backtrace": record.backtrace,
        "expires_in": expires_in,
    }


def _json_text(value: Any) -> str:
    return shorten(json.dumps(value, ensure_ascii=False, indent=2, default=str))
