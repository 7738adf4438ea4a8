"""Workflows as middleware, worker side: the last attempt of a job that is part of a
workflow (``"workflow": true`` in its payload: it has dependents, dependencies or a
batch) releases, cancels and counts in the same finish call that records its end
(``FinishPlan.workflow``, lib_workflow.lua). Other jobs cost one dict lookup.

The call must be given the queues that waiting jobs go to: this reads them
(``wf:queues``) just before. When that set changed in between, the call writes
nothing and replies -1; the worker plans again (worker/fetch.py's ``QueuesChanged``).
"""

from __future__ import annotations

import dataclasses

import redis

from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol.keys import Keys
from pyresque.protocol.workflow import (
    apply_reports,
    record_dependents_cancelled,
    waiting_queues,
)


class Workflows:
    """Worker side of workflows: plans the workflow part of a finish."""

    def __init__(self, client: redis.Redis, keys: Keys, worker_id: str) -> None:
        self._client = client
        self._keys = keys
        self._worker_id = worker_id

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        payload = work.payload
        if payload is None or payload.extra.get("workflow") is not True or not payload.id:
            return plan
        if plan.outcome == "retry":  # not its last attempt: nothing to settle yet
            return plan
        if self._keys.clustered:
            return dataclasses.replace(plan, report=True)
        queues = waiting_queues(self._client, self._keys)
        return dataclasses.replace(plan, workflow=queues)

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        """After a failure or cancel that cancelled dependents: their result records and
        statuses say so (a waiter wakes). Not in the finish call: their keys are per job.
        A dependent it released onto a queue whose key holds another type is failed by
        the heartbeats' outbox drain, within a lease (workflow_foreign.py): not a round
        trip more for every workflow job's finish. On Cluster: the end the finish
        recorded, applied (its dependents, its batches)."""
        if recorded and plan.report and work.payload and work.payload.id:
            shard = self._keys.for_queue(work.claim.queue)
            apply_reports(self._client, self._keys, shard, self._worker_id, [work.payload.id])
        elif recorded and plan.workflow is not None and plan.outcome != "ok" and work.payload:
            record_dependents_cancelled(self._client, self._keys, work.payload.id or "")
