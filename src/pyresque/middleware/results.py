"""Results as middleware: a job that asks for its result (``Job.store_result`` /
``result_ttl``, or the enqueue's ``result_ttl`` payload field) gets its return value,
or its final failure, stored by the finish call (``FinishPlan.result_ttl``,
lib_finish.lua), in the same atomic step that records its end. A value that is not
JSON fails the job, saying so, instead of storing its repr. A job cancelled while it
ran gets a ``cancelled`` record whether it asked for a result or not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pyresque.exceptions import ResultNotJSON
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol.results import DEFAULT_RESULT_TTL, ttl_for


def result_ttl(work: Work) -> int:
    """How long ``work``'s result is kept: the payload's field (checked before the job
    started, payload_fields.py), else its class's; 0 when it is not stored."""
    payload = work.payload
    if payload is None or not payload.id:  # nothing to find the result by
        return 0
    ttl = payload.extra.get("result_ttl")
    if isinstance(ttl, int) and ttl > 0:
        return ttl
    job = work.job
    return ttl_for(job.store_result, job.result_ttl) if job is not None else 0


class Results:
    """Worker side; a job that stores no result costs one dict lookup."""

    def acts_on(self, work: Work) -> bool:
        """Whether ``around_process`` checks a result: the job's is stored."""
        return result_ttl(work) > 0

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        outcome = next()
        if outcome.kind == "ok" and result_ttl(work):
            outcome.result_json()  # notes a value that is not JSON
            if outcome.not_json:
                return Outcome.failed(
                    ResultNotJSON(
                        f"the job returned a {outcome.not_json}, which is not JSON: "
                        "a job that stores its result must return JSON data"
                    )
                )
        return outcome

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        ttl = result_ttl(work)
        if outcome.kind == "cancelled" and work.payload is not None and work.payload.id:
            ttl = ttl or DEFAULT_RESULT_TTL  # as for a queued job cancelled: waiters are told
        return dataclasses.replace(plan, result_ttl=ttl) if ttl else plan
