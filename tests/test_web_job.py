"""The Job page (``/jobs/<id>``, ``/api/jobs/<id>``): a job's status packet, progress
and stored result, from real worker runs, and whatever else the keys may hold."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pyresque import Job, Resque
from pyresque.dev.testing import run_jobs
from pyresque.protocol.progress import progress_json
from pyresque.web.format import item_path
from test_web_support import WebChargeCard, client, rq

__all__ = ["client", "rq"]


class WebTotal(Job, name="Total"):
    def perform(self) -> dict[str, object]:
        return {"total": sum(self.args["items"]), "label": "<b>sum</b>"}


def test_a_finished_job_shows_its_status_and_result(client: TestClient, rq: Resque) -> None:
    job_id = rq.enqueue("sums", WebTotal, {"items": [1, 2, 3]}, track_status=True, result_ttl=600)
    failing = rq.enqueue(
        "billing", WebChargeCard, {"amount": 900, "card": "4242"}, store_result=True
    )
    assert run_jobs(rq, ["sums", "billing"]).processed == 2
    data = client.get(f"/api/jobs/{job_id}").json()
    assert data["status"]["state"] == "complete"
    assert data["result"]["state"] == "ok"
    assert '"total": 6' in data["result"]["value_text"]
    assert 0 < data["result"]["expires_in"] <= 600
    assert data["progress"] is None
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-result="ok"' in page
    assert "&lt;b&gt;sum&lt;/b&gt;" in page  # escaped
    failed = client.get(f"/api/jobs/{failing}").json()["result"]
    assert failed["state"] == "failed"
    assert failed["exception"].endswith("PaymentDeclined")
    assert "declined" in failed["error"]
    assert "PaymentDeclined" in client.get(f"/jobs/{failing}").text
    # Ids link here from the failed list and from the queues.
    assert f'href="/jobs/{failing}"' in client.get("/failed").text
    queued = rq.enqueue("sums", WebTotal, {"items": [4]})
    assert f'href="/jobs/{queued}"' in client.get("/queues/sums").text


def test_progress_and_the_lookup_form(client: TestClient, rq: Resque) -> None:
    rq.redis.set(rq.keys.progress("abc"), progress_json(0.25, "page 25 of 100"))
    page = client.get("/jobs/?job=abc").text
    assert '<progress max="1" value="0.25">' in page
    assert "page 25 of 100" in page
    assert "No result stored" in page
    assert client.get("/jobs/").status_code == 200  # the form alone


KEYS = st.sampled_from(["status", "progress", "result"])
VALUES = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b'{"status": 99}',
            b'{"status": "2", "updated": "x"}',
            b'{"fraction": NaN, "message": "x", "updated": 1}',
            b'{"fraction": 2, "message": "x", "updated": 1}',
            b'{"status": "ok"}',
            b'{"status": "failed", "exception": 1}',
            b"[" * 5000,
            b'"\\ud800"',
        ]
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.tuples(KEYS, VALUES, st.booleans()), max_size=4), job_id=st.text(max_size=30)
)
@example(writes=[], job_id="0\n0")  # Starlette's path parameter stopped at a newline: 404
@example(writes=[], job_id=".")  # a dot segment: dropped from the path by the client
def test_any_key_content_gives_a_page(
    client: TestClient, rq: Resque, writes: list[tuple[str, bytes, bool]], job_id: str
) -> None:
    job_id = job_id.encode("utf-8", "replace").decode().strip() or "x"
    for kind, value, as_hash in writes:
        key = getattr(rq.keys, kind)(job_id)
        rq.redis.delete(key)
        if as_hash:
            rq.redis.hset(key, "f", value)  # a key of another type
        else:
            rq.redis.set(key, value)
    path, named = item_path("jobs", job_id)  # as the dashboard links it
    response = client.get(path, params=named)
    assert response.status_code == 200
    assert "<script" not in response.text.split("<main>")[1].split("</main>")[0].lower()
    api = client.get(f"/api{path}", params=named)
    assert api.status_code == 200
    assert api.json()["id"] == job_id


def test_cancel_from_the_job_page(client: TestClient, rq: Resque) -> None:
    job_id = rq.enqueue("sums", WebTotal, {"items": [1]}, track_status=True)
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-action="cancel-job"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    done = client.post(
        "/actions/cancel-job",
        data={"job_id": job_id, "csrf_token": token.group(1), "next": f"/jobs/{job_id}"},
        follow_redirects=True,
    )
    assert "Job cancelled" in done.text
    assert 'data-state="cancelled"' in done.text
    assert 'data-action="cancel-job"' not in done.text  # it ended: no button
    assert rq.size("sums") == 0
