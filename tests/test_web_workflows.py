"""The Workflows page (recent batches, one batch) and a job's place in its workflow on
the Job page, from real worker runs of a chain and a group with callbacks."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pyresque import Job, Resque
from pyresque.client.workflows import chain, group, step
from pyresque.dev.testing import run_jobs
from test_web_support import client, rq

__all__ = ["client", "rq"]


class WebStep(Job, name="WebStep"):
    def perform(self, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n


def test_batches_and_dependencies_before_and_after_a_run(client: TestClient, rq: Resque) -> None:
    flow = rq.enqueue_workflow(
        chain(
            group(
                step("wf", WebStep, 1),
                step("wf", WebStep, -1),
                step("wf", WebStep, 2),
                on_complete=step("wf", WebStep, 10),
                name="<b>nightly</b> fetches",
            ),
            step("wf", WebStep, 3),
        )
    )
    assert flow.batch
    page = client.get("/workflows").text
    assert "&lt;b&gt;nightly&lt;/b&gt; fetches" in page
    assert f'data-batch="{flow.batch}"' in page
    assert "0 ok · 0 failed · 0 cancelled · 3 pending / 3" in page
    (last,) = flow.ends
    waiting = client.get(f"/api/jobs/{last}").json()["workflow"]
    assert waiting["state"] == "waiting"
    assert len(waiting["waits_for"]) == 3
    assert {j["state"] for j in waiting["waits_for"]} == {"queued"}

    run_jobs(rq, "wf")
    one = client.get(f"/api/workflows?batch={flow.batch}").json()["batch"]
    assert (one["succeeded"], one["failed"], one["pending"], one["complete"]) == (2, 1, 0, True)
    shown = client.get(f"/workflows?batch={flow.batch}").text
    assert "complete, with failures" in shown
    assert re.search(
        r'<svg class="stacked".*?<title>2 succeeded, 1 failed, 0 cancelled of 3', shown
    )
    assert f'href="/jobs/{one["on_complete"]}"' in shown
    # The failed member cancelled the chain's next step, which says by whom.
    after = client.get(f"/api/jobs/{last}").json()["workflow"]
    assert after["state"] == "cancelled"
    assert after["cancelled_by"]
    culprit = client.get(f"/api/jobs/{after['cancelled_by']}").json()["workflow"]
    assert culprit["state"] == "failed"
    assert {j["id"] for j in culprit["cancelled"]} == {last}
    assert culprit["batches"] == [flow.batch]
    job_page = client.get(f"/jobs/{after['cancelled_by']}").text
    assert f'href="/workflows?batch={flow.batch}"' in job_page
    assert 'data-workflow="failed"' in job_page


def test_no_workflows_and_unknown_batches(client: TestClient, rq: Resque) -> None:
    assert "No batch yet" in client.get("/workflows").text
    assert "No batch nope" in client.get("/workflows?batch=nope").text
    plain = rq.enqueue("q", WebStep, 1)
    assert client.get(f"/api/jobs/{plain}").json()["workflow"] is None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    record=st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b'{"s": "waiting", "wait": [1, 2], "dep": {"x": true}, "b": "b"}',
                b'{"s": "failed", "cancelled": {"a": 1}, "by": 5}',
                b'{"s": "queued", "dep": ["' + b"y" * 5000 + b'"]}',
                b'{"total": -1, "name": 5}',
            ]
        ),
    ),
    batch_field=st.booleans(),
)
def test_any_record_gives_a_page(
    client: TestClient, rq: Resque, record: bytes, batch_field: bool
) -> None:
    rq.redis.delete(rq.keys.wf_jobs, rq.keys.wf_batches)
    rq.redis.hset(rq.keys.wf_batches if batch_field else rq.keys.wf_jobs, "x", record)
    assert client.get("/workflows?batch=x").status_code == 200
    assert client.get("/jobs/x").status_code == 200
    rq.redis.delete(rq.keys.wf_jobs, rq.keys.wf_batches)
    rq.redis.set(rq.keys.wf_batches if batch_field else rq.keys.wf_jobs, record)  # wrong type
    assert client.get("/workflows?batch=x").status_code == 200
    assert client.get("/api/jobs/x").status_code == 200
