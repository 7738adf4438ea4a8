"""Bulk retries and removals on the failed list run in the background, a chunk at a
time, with their progress in Redis: shown by the dashboard and the CLI, and resumed
when the process running them dies."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from e2e_support import Procs, wait_for
from pyresque import Resque
from pyresque.cli.main import main as cli
from pyresque.client.admin import bulk
from pyresque.client.admin.failures import FailureFilter
from pyresque.protocol.failed_record import failure_record
from pyresque.web.app import OPEN, create_app
from test_web_support import LOCAL


def fill(rq: Resque, n: int, every: int) -> int:
    """``n`` failure records; every ``every``-th of class Match (on queue ``back``)."""
    pipe = rq.redis.pipeline(transaction=False)
    for i in range(n):
        klass = "Match" if i % every == 0 else "Other"
        payload = {"class": klass, "args": [{"n": i}], "id": uuid.uuid4().hex}
        pipe.rpush(rq.keys.failed, failure_record(payload, "E", f"boom {i}", [], "h:1:q", "back"))
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return len(range(0, n, every))


@pytest.fixture
def client(redis_url: str, rq: Resque) -> Iterator[TestClient]:
    with TestClient(create_app(redis_url, namespace=rq.namespace, auth=OPEN), LOCAL) as test_client:
        yield test_client


def test_a_retry_killed_midway_resumes_and_retries_each_record_once(
    procs: Procs, rq: Resque, redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    matching = fill(rq, 60_000, 4)
    conn = ["--redis-url", redis_url, "--namespace", namespace]
    proc = procs.cli(["failed", "retry", "--class", "Match", *conn], namespace)

    def midway() -> dict[str, object] | None:
        ops = bulk.ops(rq)
        return ops[0] if ops and 0 < ops[0]["read"] < ops[0]["total"] else None

    op = wait_for(midway, 60, "the retry to be under way")
    proc.send(signal.SIGKILL)
    procs.expect_failure(proc)
    proc.wait_exit()
    redis_client.delete(rq.keys.bulk_lease(str(op["id"])))  # as when its lease expires
    [stalled] = bulk.ops(rq)
    assert stalled["stalled"]
    assert stalled["state"] == "running"
    listed = CliRunner().invoke(cli, ["failed", "ops", *conn]).output
    assert f"{op['id']}  retry --class Match  stalled" in listed
    resumed = CliRunner().invoke(cli, ["failed", "resume", str(op["id"]), *conn])
    assert resumed.exit_code == 0, resumed.output
    [done] = bulk.ops(rq)
    assert (done["state"], done["runs"], done["changed"]) == ("done", 2, matching)
    assert rq.size("back") == matching  # each matching job once, none twice
    assert rq.failures.count() == 60_000


def test_the_dashboard_removes_in_the_background_and_shows_progress(
    client: TestClient, rq: Resque
) -> None:
    matching = fill(rq, 20_000, 10)
    token = client.get("/api/csrf").json()["csrf_token"]
    started = client.post(
        "/api/actions/remove-all-failed", json={"class": "Match"}, headers={"X-CSRF-Token": token}
    )
    assert started.json() == {"ok": True, "action": "remove-all-failed", "count": 20_000}

    def finished() -> dict[str, object] | None:
        [op] = client.get("/api/bulk").json()["ops"]
        return op if op["state"] == "done" else None

    op = wait_for(finished, 120, "the removal to end")
    assert (op["changed"], op["percent"]) == (matching, 100)
    assert rq.failures.count() == 20_000 - matching
    page = client.get("/failed").text
    assert f'data-op="{op["id"]}" data-state="done"' in page
    assert 'id="bulk-live" class="bulk-ops" aria-label="Bulk actions">' in page  # not live now


def test_a_stalled_operation_is_resumed_from_the_dashboard(
    client: TestClient, rq: Resque, redis_client: redis.Redis
) -> None:
    fill(rq, 500, 5)
    op_id = bulk.start(rq, "remove", FailureFilter.of(class_name="Match"))
    assert bulk.get(rq, op_id)["stalled"]  # type: ignore[index]  # recorded, nobody runs it
    assert 'data-action="resume-bulk"' in client.get("/failed").text
    redis_client.hset(rq.keys.bulk(op_id), "state", "running")
    redis_client.set(rq.keys.bulk_lease(op_id), "another process", px=60_000)
    assert (
        'aria-label="Bulk actions" data-live>' in client.get("/failed").text
    )  # progress shown live
    redis_client.delete(rq.keys.bulk_lease(op_id))
    token = client.get("/api/csrf").json()["csrf_token"]
    resumed = client.post(
        "/api/actions/resume-bulk", json={"id": op_id}, headers={"X-CSRF-Token": token}
    )
    assert resumed.status_code == 200, resumed.text
    wait_for(lambda: bulk.get(rq, op_id)["state"] == "done", 60, "the resumed removal")  # type: ignore[index]
    assert rq.failures.count() == 400
    again = client.post(
        "/api/actions/resume-bulk", json={"id": op_id}, headers={"X-CSRF-Token": token}
    )
    assert again.status_code == 409  # not stalled any more


FIELD = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"nan", b"inf", b"-1", b"1e400", b"running", b"retry", b"\xff"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [b"action", b"state", b"total", b"read", b"changed", b"runs", b"cursor", b"queue"]
        ),
        FIELD,
        min_size=1,
    )
)
def test_operations_written_by_anyone_are_shown_and_never_guessed(
    client: TestClient, rq: Resque, redis_client: redis.Redis, fields: dict[bytes, bytes]
) -> None:
    """An operation hash holding anything: the page and the list show it, and running
    it does nothing unless its action is one ``start`` writes."""
    redis_client.delete(rq.keys.failed, rq.keys.bulk_ops, rq.keys.queue("back"))
    fill(rq, 20, 2)
    redis_client.delete(rq.keys.bulk("x"))
    redis_client.hset(rq.keys.bulk("x"), mapping=fields)  # type: ignore[arg-type]
    redis_client.zadd(rq.keys.bulk_ops, {"x": 1})
    assert len(bulk.ops(rq)) == 1
    assert client.get("/failed").status_code == 200
    try:
        bulk.run(rq, "x")
    except Exception:  # recorded as failed, and raised to the caller (logged in a thread)
        assert bulk.get(rq, "x")["state"] == "failed"  # type: ignore[index]
    if fields.get(b"action") not in (b"retry", b"remove", b"remove-retried"):
        assert rq.failures.count() == 20
        assert rq.size("back") == 0


def test_a_list_key_of_another_type_shows_no_operations(
    client: TestClient, rq: Resque, redis_client: redis.Redis
) -> None:
    redis_client.set(rq.keys.bulk_ops, "not a sorted set")
    assert bulk.ops(rq) == []
    assert client.get("/failed").status_code == 200
