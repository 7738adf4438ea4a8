"""The worker side of the chain (chain.py): a claimed job as middleware see it
(``Work``), and what the finish call records for it (``FinishPlan``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyresque.exceptions import MalformedPayload, UnknownJob
from pyresque.jobs import logs
from pyresque.jobs.job import Job, Registry
from pyresque.jobs.limits import NO_LIMITS, Held
from pyresque.jobs.payload_fields import check_fields
from pyresque.jobs.perform import Outcome
from pyresque.protocol.claim import Claim
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.protocol.results import ResultRecord
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.workflow import reports_key, workflow_keys

log = logging.getLogger("pyresque.worker")


@dataclass
class Work:
    """A claimed job in the worker. ``payload`` and ``job`` are None when they could not
    be made (a malformed payload, an unknown class): then only the finish methods run."""

    claim: Claim
    payload: Payload | None = None
    job: Job | None = None
    timeout: float | None = None  # what the executor enforces (timeouts.py)
    timed_out: bool = False  # the worker's watchdog stopped it
    held: Held = NO_LIMITS  # the limits it holds (limits.py)
    seconds: float = 0.0  # how long it took, claim to finish

    @classmethod
    def of(cls, claim: Claim, registry: Registry) -> tuple[Work, Outcome | None, Payload | None]:
        """The work for ``claim``, with the outcome of a job that cannot start (else None)
        and the payload of one refused for a bad field. Such a job is recorded with its
        raw bytes; none of its fields is trusted, but a job that was decoded still gets
        its status (FAILED), so a waiter is not left hanging."""
        work = cls(claim)
        try:
            work.payload = Payload.decode(claim.raw)
            check_fields(work.payload)
            work.job = registry.get(work.payload.class_name)(work.payload, claim.queue)
        except MalformedPayload as exc:
            return cls(claim), Outcome.failed(exc), work.payload
        except UnknownJob as exc:
            return work, Outcome.failed(exc), None
        except Exception as exc:  # a job class's constructor raised
            name = work.payload.id or work.payload.class_name if work.payload else claim.token
            log.exception("job %s could not be started", name)
            return work, Outcome.failed(exc), None
        return work, None, None


@dataclass(frozen=True)
class FinishPlan:
    """What the finish step does for one job, besides counting it."""

    outcome: str  # ok, failed, retry or cancelled
    retry_at: int = 0  # when it runs again (retry)
    retry_item: str = ""  # the delayed item of its next attempt (retry)
    lock: UniqueLock | None = None  # the unique lock to release
    held: Held = NO_LIMITS  # the slots to give back
    shown: Payload | None = None  # the failure record's payload, when not the job's own
    result_ttl: int = 0  # store the result (or the final failure) for this many seconds
    #: a workflow job's last attempt: the queues that jobs waiting for dependencies go
    #: to, as read before the call (workflows.py); None for any other job
    workflow: tuple[str, ...] | None = None
    #: on Redis Cluster, a workflow job's last attempt: its end goes to the worker's
    #: reports hash in the queue's slot, applied just after (protocol/workflow.py)
    report: bool = False

    def call(
        self,
        keys: Keys,
        first: list[str],
        work: Work,
        outcome: Outcome,
        refused: Payload | None,
        worker_id: str,
        working: bool,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of finish.lua for ``work``: ``first`` (``finish_keys``), then
        the failure counters and list of a failed job, ``worker:<id>`` when the worker
        may have written it (``working``), the status key of a job with an id (also of
        one ``refused`` for a bad field), and the plan's own (``tail``)."""
        claim, payload = work.claim, work.payload
        tracked = payload or refused
        status_key = keys.status(tracked.id, tracked.prefix) if tracked and tracked.id else None
        job_id = payload.id if payload else None
        stored = bool(self.result_ttl and job_id and self.outcome != "retry")
        result = [keys.result(job_id), keys.result_ready(job_id)] if stored and job_id else []
        flow = workflow_keys(keys, self.workflow) if job_id and self.workflow is not None else []
        flow = [reports_key(keys, worker_id)] if job_id and self.report else flow
        tail_keys, tail_args = self.tail(keys, status_key, result + flow)
        record = ""
        known = list(first)
        if self.outcome == "failed":
            known += [keys.stat("failed"), keys.stat("failed", worker_id), keys.failed]
            failed = self.shown or payload  # with its attempts' errors, when it was retried
            shown = failed.to_dict() if failed else claim.raw.decode("utf-8", "backslashreplace")
            record = failure_record(
                shown, outcome.exception, outcome.error, outcome.backtrace, worker_id, claim.queue
            )
        if working:
            known.append(keys.worker(worker_id))
        args = [claim.token, self.outcome, outcome.result_json(), record, *tail_args]
        stored_args = [self.result_ttl, _result(outcome)] if result else ["", ""]
        args += ["1" if working else "", *stored_args]
        flow_arg = "report" if self.report else len(self.workflow or ())
        args += [job_id, flow_arg] if flow else ["", ""]
        return known + tail_keys, args

    def tail(
        self, keys: Keys, status_key: str | None, result: list[str]
    ) -> tuple[list[str], list[Any]]:
        """The optional KEYS and the ARGV 5 to 11 of finish.lua (lib_finish.lua);
        ``result`` is the result key and its ready list, when the result is stored,
        then the workflow keys, when there are some."""
        extra = [status_key] if status_key else []
        if self.retry_item:
            ts = self.retry_at
            extra += [keys.delayed_schedule, keys.delayed(ts), keys.timestamps(self.retry_item)]
        if self.lock:
            extra.append(keys.unique(self.lock.digest))
        extra += result
        extra += self.held.slots
        args = [
            "1" if status_key else "0",
            self.retry_at if self.retry_item else "",
            f"delayed:{self.retry_at}",
            self.retry_item,
            self.lock.token if self.lock else "",
            self.held.member,
            len(self.held.slots),
        ]
        return extra, args


def _result(outcome: Outcome) -> str:
    """The result record of a job that ended with ``outcome`` (results.py)."""
    if outcome.kind == "cancelled":
        return ResultRecord.cancelled_json()
    if outcome.ok:
        return ResultRecord.ok_json(outcome.result_json())
    return ResultRecord.failed_json(outcome.exception, outcome.error, outcome.backtrace)


def finish_keys(keys: Keys, worker_id: str) -> list[str]:
    """finish.lua's first KEYS, the same for every job of a worker (lib_finish.lua)."""
    return [keys.inflight(worker_id), keys.stat("processed"), keys.stat("processed", worker_id)]


def log_end(work: Work, outcome: Outcome) -> None:
    """Log how a job ended (one line, with its fields for structured logs: jobs/logs.py)."""
    payload, kind = work.payload, outcome.kind
    detail = {
        "failed": f": {outcome.exception}: {outcome.error}",
        "unstarted": ": its process died before taking it; back at the head of its queue",
    }.get(kind, "")
    name, job_id = (payload.class_name, payload.id or "-") if payload else ("?", "-")
    args = (job_id, name, work.claim.queue, kind, work.seconds * 1000, detail)
    extra = logs.fields(payload, work.claim.queue) if payload else None
    log.info("job %s %s from %s %s in %.1f ms%s", *args, extra=extra)
