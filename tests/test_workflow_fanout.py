"""A job with 10,000 dependents, and a workflow that pushes 10,000 jobs at once, on a
single Redis (Cluster: tests/test_cluster_workflow_results.py): no Lua ``unpack`` of an
unbounded list, and each record is written once per call, not once per dependent."""

from __future__ import annotations

import pytest

from pyresque import Resque, chain, group, step
from pyresque.dev.testing import run_jobs
from workflow_jobs import ran  # noqa: F401  (importing it registers the job classes)

pytestmark = pytest.mark.usefixtures("jobs_env")
N = 10_000


def test_a_job_with_10000_dependents_releases_them_all(rq: Resque) -> None:
    flow = rq.enqueue_workflow(
        chain(step("setup", "Step", 0), group(*(step("fan", "Step", i) for i in range(N))))
    )
    assert rq.size("fan") == 0
    assert rq.workflow_state(flow.jobs[0]) == "queued"
    run_jobs(rq, "setup")  # its finish releases all 10,000
    assert rq.size("fan") == N
    assert rq.workflow_state(flow.jobs[-1]) == "queued"


def test_a_workflow_that_pushes_10000_jobs_at_once(rq: Resque) -> None:
    rq.enqueue_workflow(group(*(step("fan", "Step", i) for i in range(N))))
    assert rq.size("fan") == N
