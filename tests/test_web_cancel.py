"""The dashboard's view of running jobs (issue 16, section 3): their progress, and a
Cancel button (a POST action with the CSRF token, as the others) that stops the job
on its worker. A real ``pyresque worker`` process runs the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from control_jobs import Endless
from e2e_support import Procs, wait_for
from pyresque import JobCancelled, Resque, Status
from pyresque.web.app import OPEN, create_app
from test_web_api import act, get
from test_web_support import LOCAL

JOBS = Path(__file__).resolve().parent / "control_jobs.py"


@pytest.fixture
def client(redis_url: str, rq: Resque) -> Iterator[TestClient]:
    with TestClient(create_app(redis_url, namespace=rq.namespace, auth=OPEN), LOCAL) as test_client:
        yield test_client


def test_the_dashboard_shows_progress_and_cancels_a_running_job(
    procs: Procs, rq: Resque, namespace: str, client: TestClient
) -> None:
    handle = rq.enqueue_to("ctl", Endless, "a", track_status=True)
    assert handle
    procs.worker(namespace, "ctl", "--mode", "fork", app=JOBS)

    def shown() -> dict[str, Any] | None:
        running = get(client, "/api/overview")["running"]
        jobs = [w["job"] for w in running if w["job"] and w["job"].get("progress")]
        return jobs[0] if jobs else None

    job = wait_for(shown, message="the running job with its progress on the overview")
    assert job["id"] == handle
    assert job["progress"]["fraction"] == 0.25
    page = client.get("/").text
    assert "working on a" in page
    assert 'data-action="cancel-job"' in page

    refused = client.post("/api/actions/cancel-job", json={"job_id": handle})  # no CSRF token
    assert refused.status_code == 403
    assert handle.status() == Status.RUNNING
    response = act(client, "cancel-job", job_id=handle)
    assert response.status_code == 200, response.text
    with pytest.raises(JobCancelled):
        handle.result(timeout=30)
    assert act(client, "cancel-job", job_id=handle).status_code == 409  # nothing to cancel
