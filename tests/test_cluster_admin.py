"""The readers and controls on a real Redis Cluster (3 masters, a replica each, shared
by the session: cluster_support.py): stats and failures summed over the queues' slots,
the failures API, the CLI and the dashboard's data over every slot."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import Job, JobCancelled, JobFailed, NotReplicated, Resque, Status
from pyresque.cli.main import main as cli
from pyresque.client.admin import failures as admin_failures
from pyresque.client.admin.base import Problems
from pyresque.client.admin.cancel import running_on
from pyresque.client.admin.failures import FailureFilter
from pyresque.client.admin.jobs import job_page
from pyresque.client.admin.stats import counts, overview_page
from pyresque.client.admin.workers import list_workers, workers_page
from pyresque.client.calls import Enqueued
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.protocol.durability import Replicas
from results_jobs import Answer, Broken
from test_cluster import Record, queues_on_each_master, ran, rq, run_worker  # noqa: F401


class Sleeper(Job):
    """Sleeps in short steps for up to 120 s (until it is cancelled)."""

    store_result = True

    def perform(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return "ran out"


def wait_until(check: Any, what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


def failed_on_every_master(rq: Resque, cluster: ClusterGroup, log: str) -> list[str]:  # noqa: F811
    """Two failed jobs and one that ran on a queue of each master; the queues."""
    queues = queues_on_each_master(rq, cluster)
    for queue in queues:
        rq.enqueue_to(queue, Record, log, queue)
        rq.enqueue_to(queue, Record, f"{queue}-a")  # one argument short: TypeError
        rq.enqueue_to(queue, Record, f"{queue}-b")
    run_worker(rq, queues, interval=0, mode="inline")
    return queues


def test_counts_and_the_failures_api_read_every_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queues = failed_on_every_master(rq, cluster, str(tmp_path / "ran"))
    totals = counts(rq, Problems())
    assert (totals["processed"], totals["failed"], totals["failed_total"]) == (9, 6, 6)
    assert rq.failures.count() == 6
    every = rq.failures.list(0, 100)
    assert [f.index for f in every] == list(range(6))
    assert sorted(f.queue for f in every) == sorted(queues * 2)
    assert [f.raw for f in rq.failures] == [f.raw for f in every]
    assert [f.raw for f in rq.failures.list(-2, 2)] == [f.raw for f in every[4:]]
    assert [f.raw for f in rq.failures.list(1, 3)] == [f.raw for f in every[1:4]]
    for failure in every:
        got = rq.failures.get(failure.index)
        assert got is not None
        assert got.raw == failure.raw
    assert rq.failures.get(6) is None

    # Retry one: its job is back on its queue, its record marked.
    first = every[0]
    assert rq.failures.requeue(0)
    assert rq.size(first.queue) == 1
    marked = rq.failures.get(0)
    assert marked is not None
    assert marked.retried_at is not None
    # Remove the last; then by filter, every slot's records of one queue.
    assert rq.failures.remove(5)
    assert rq.failures.count() == 5
    other = next(q for q in queues if q != first.queue)
    assert rq.failures.remove_all(queue=other) == 2
    assert all(f.queue != other for f in rq.failures)
    assert rq.failures.clear_retried() == 1
    assert rq.failures.count() == 2
    assert rq.failures.clear() == 2
    assert rq.failures.count() == 0


def test_the_failed_page_filters_and_acts_over_every_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queues = failed_on_every_master(rq, cluster, str(tmp_path / "ran"))
    page = admin_failures.failed_page(rq, 0, 4)
    assert page["total"] == 6
    assert len(page["failures"]) == 4
    assert [f["index"] for f in page["failures"]] == [5, 4, 3, 2]  # newest first
    rest = admin_failures.failed_page(rq, 4, 4)
    assert [f["index"] for f in rest["failures"]] == [1, 0]
    one = admin_failures.failed_page(rq, 0, 20, FailureFilter.of(queue=queues[2]))
    assert [f["queue"] for f in one["failures"]] == [queues[2]] * 2
    assert one["matching"] == 2
    searched = admin_failures.failed_page(rq, 0, 20, FailureFilter.of(text=f"{queues[1]}-b"))
    assert [f["args"][0] for f in searched["failures"]] == [f"{queues[1]}-b"]
    shown = one["failures"][0]
    assert admin_failures.retry_failure(rq, shown["index"], shown["digest"]) == 1
    assert rq.size(queues[2]) == 1
    other = one["failures"][1]  # (the retried one's digest changed with its mark)
    assert admin_failures.remove_failure(rq, other["index"], other["digest"]) == 1
    assert rq.failures.count() == 5
    # Bulk retry with a filter: what pyresque failed retry runs.
    assert admin_failures.retry_all(rq, FailureFilter.of(queue=queues[0])) == 2
    assert rq.size(queues[0]) == 2


def test_the_cli_lists_and_retries_failures_of_every_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queues = failed_on_every_master(rq, cluster, str(tmp_path / "ran"))
    base = ["--redis-url", cluster.url(), "--namespace", rq.namespace]
    listed = CliRunner().invoke(cli, ["failed", "list", "--json", *base])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)
    records = found["failures"] if isinstance(found, dict) else found
    assert sorted(r["queue"] for r in records) == sorted(queues * 2)
    retried = CliRunner().invoke(cli, ["failed", "retry", "--queue", queues[1], *base])
    assert retried.exit_code == 0, retried.output
    assert rq.size(queues[1]) == 2
    info = CliRunner().invoke(cli, ["info", "--json", *base])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["failed"] == 6


def test_status_and_results_by_id_are_read_and_waited_for_in_the_queues_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[2]  # not the home slot's master
    handle = rq.enqueue_to(queue, Answer, 21, track_status=True)
    broken = rq.enqueue_to(queue, Broken, "boom")
    assert handle is not None
    assert broken is not None
    assert handle.status() == Status.WAITING
    assert rq.status(str(handle)) == Status.WAITING  # by id alone: every queue's slot
    got: dict[str, Any] = {}

    def wait() -> None:
        got["value"] = handle.result(timeout=120)

    waiter = threading.Thread(target=wait)
    waiter.start()  # blocks in the queue's slot before the job runs
    run_worker(rq, [queue], interval=0, mode="inline")
    waiter.join(150)
    assert got["value"]["doubled"] == 42
    assert handle.status() == Status.COMPLETE
    assert rq.result(str(handle), timeout=0)["doubled"] == 42
    with pytest.raises(JobFailed):
        rq.result(str(broken), timeout=0)  # untracked: found by its result
    page = job_page(rq, str(handle))
    assert page["status"]["state"] == "complete"
    assert page["result"]["state"] == "ok"
    shown = CliRunner().invoke(
        cli, ["status", str(handle), "--redis-url", cluster.url(), "--namespace", rq.namespace]
    )
    assert shown.exit_code == 0, shown.output
    assert "complete" in shown.output


def test_cancel_a_queued_and_a_running_job_in_their_queues_slots(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[1]
    queued = rq.enqueue_to(queue, Answer, 1, track_status=True)
    assert queued is not None
    assert rq.cancel(str(queued)) == {
        "id": queued,
        "cancelled": True,
        "was": "queued",
        "worker": None,
    }
    assert rq.size(queue) == 0
    assert queued.status() == Status.CANCELLED
    with pytest.raises(JobCancelled):
        queued.result(timeout=0)

    running = rq.enqueue_to(queue, Sleeper, track_status=True)
    assert running is not None
    worker = threading.Thread(
        target=run_worker, args=(rq, [queue]), kwargs={"interval": 0, "mode": "threads"}
    )
    worker.start()
    holder = wait_until(lambda: running_on(rq, str(running)), "running job")
    outcome = rq.cancel(str(running))
    assert (outcome["was"], outcome["worker"], outcome["cancelled"]) == ("running", holder, True)
    with pytest.raises(JobCancelled):
        running.result(timeout=60)
    assert running.status() == Status.CANCELLED
    worker.join(60)
    assert not worker.is_alive()
    assert rq.failures.count() == 0


def test_a_new_queue_wakes_glob_workers_from_the_home_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    changed = rq.keys.home.queues_changed
    rq.enqueue_to("fresh-a", Answer, 1)
    assert rq.redis.lrange(changed, 0, -1) == [b"1"]  # what an idle glob worker waits on
    rq.redis.delete(changed)
    rq.enqueue_to("fresh-a", Answer, 2)  # no new queue: no token
    other = Resque(cluster.url(), namespace=rq.namespace)  # another producer, same queue
    other.enqueue_to("fresh-a", Answer, 3)
    assert rq.redis.llen(changed) == 0
    other.enqueue_to("fresh-b", Answer, 4)
    assert rq.redis.llen(changed) == 1
    other.redis.close()


def test_enqueue_many_with_the_wait_policy_waits_on_each_master(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queues = queues_on_each_master(rq, cluster)
    jobs = [Enqueued(queue, Answer, [i]) for queue in queues for i in range(1500)]
    durable = Resque(cluster.url(), namespace=rq.namespace, durability=Replicas(1, 5000))
    handles = durable.enqueue_many(jobs)
    assert all(handles)
    assert [rq.size(queue) for queue in queues] == [1500] * 3
    assert {h.queue for h in handles if h} == set(queues)
    more = Resque(cluster.url(), namespace=rq.namespace, durability=Replicas(2, 100))
    with pytest.raises(NotReplicated):  # a replica each: two never acknowledge
        more.enqueue_many(jobs[:2])
    durable.redis.close()
    more.redis.close()


def test_workers_running_jobs_and_metrics_read_every_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    from pyresque.web.metrics import render

    queues = failed_on_every_master(rq, cluster, str(tmp_path / "ran"))
    running = rq.enqueue_to(queues[2], Sleeper)
    assert running is not None
    worker = threading.Thread(
        target=run_worker, args=(rq, queues), kwargs={"interval": 0, "mode": "threads"}
    )
    worker.start()
    try:
        [shown] = wait_until(
            lambda: [w for w in list_workers(rq) if w.state == "working"], "working worker"
        )
        assert shown.job is not None
        assert shown.job["payload"]["class"] == "Sleeper"
        assert shown.job["queue"] == queues[2]
        page = workers_page(rq)
        assert page["working"] == 1
        assert overview_page(rq)["running"][0]["job"]["class_name"] == "Sleeper"
        assert rq.info()["working"] == 1
        body = render(rq).decode()
        ns = f'namespace="{rq.namespace}"'
        assert f"resque_jobs_processed_total{{{ns}}} 9.0" in body
        assert f"resque_failed_jobs{{{ns}}} 6.0" in body
        assert f'resque_jobs_running{{{ns},queue="{queues[2]}"}} 1.0' in body
        assert f'resque_workers{{{ns},state="working"}} 1.0' in body
    finally:
        rq.cancel(str(running))
        worker.join(60)
    finished = [w for w in list_workers(rq) if w.id == shown.id]
    assert [(w.processed, w.failed) for w in finished] in ([], [(1, 0)])


def test_every_dashboard_page_and_action_answers_on_a_cluster(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    from starlette.testclient import TestClient

    from pyresque.web.app import OPEN, create_app

    queues = failed_on_every_master(rq, cluster, str(tmp_path / "ran"))
    tracked = rq.enqueue_to(queues[1], Answer, 5, track_status=True)
    app = create_app(cluster.url(), namespace=rq.namespace, auth=OPEN)
    with TestClient(app, "http://localhost") as client:
        for path in (
            "/",
            "/queues",
            f"/queues/{queues[1]}",
            "/workers",
            "/failed",
            f"/failed?queue={queues[0]}",
            "/delayed",
            "/stats",
            "/workflows",
            f"/jobs/{tracked}",
            "/metrics",
        ):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[-2000:])
            if path != "/metrics":
                api = client.get(f"/api{path}" if path != "/" else "/api/overview")
                assert api.status_code == 200, (path, api.text[-2000:])
                assert api.json().get("problems", []) == [], (path, api.json()["problems"])
        failed = client.get("/api/failed").json()
        assert failed["total"] == 6
        token = client.get("/api/csrf").json()["csrf_token"]

        def act(action: str, **form: Any) -> Any:
            reply = client.post(
                f"/api/actions/{action}", json=form, headers={"X-CSRF-Token": token}
            )
            assert reply.status_code == 200, (action, reply.text)
            return reply.json()

        newest = failed["failures"][0]
        act("retry-failed", index=newest["index"], digest=newest["digest"])
        assert rq.size(newest["queue"]) == (2 if newest["queue"] == queues[1] else 1)
        assert act("cancel-job", job_id=str(tracked))["count"] == 1
        assert act("remove-all-failed", queue=queues[2])["count"] == 6
        wait_until(lambda: rq.failures.count() == 4, "the background removal")
        assert act("clear-failed")["count"] == 4
        assert act("remove-queue", queue=newest["queue"])["count"] == 1  # the retried job
        assert newest["queue"] not in rq.queues()


def test_asyncresque_enqueues_waits_and_cancels_on_a_cluster(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    import asyncio

    from pyresque import AsyncResque

    queues = queues_on_each_master(rq, cluster)

    async def scenario() -> None:
        async with AsyncResque(cluster.url(), namespace=rq.namespace) as producer:
            handles = [await producer.enqueue_to(q, Answer, i) for i, q in enumerate(queues)]
            more = await producer.enqueue_many([Enqueued(q, Answer, [10]) for q in queues])
            doomed = await producer.enqueue_to(queues[1], Answer, 99, track_status=True)
            assert doomed is not None
            assert await producer.status(str(doomed)) == Status.WAITING  # by id alone
            assert (await producer.cancel(str(doomed)))["was"] == "queued"
            assert await doomed.status() == Status.CANCELLED
            worker = threading.Thread(
                target=run_worker, args=(rq, queues), kwargs={"interval": 0, "mode": "inline"}
            )
            waits = [h.wait(timeout=120) for h in [*handles, *more] if h]
            worker.start()
            values = await asyncio.gather(*waits)
            worker.join(60)
            assert [v["doubled"] for v in values] == [0, 2, 4, 20, 20, 20]
            with pytest.raises(JobCancelled):
                await doomed.wait(timeout=0)

    asyncio.run(scenario())
    assert set(rq.queues()) == set(queues)
    assert rq.redis.llen(rq.keys.home.queues_changed) == 1  # glob workers told once


def test_asyncresque_with_the_wait_policy_waits_on_the_master_of_each_call(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    """With the replica of one master stopped, a write to that master's queue is not
    replicated and says so, while writes to the others' are: each WAIT went to the
    connection of the master that took the write (a WAIT anywhere else, on a
    connection that wrote nothing, would answer at once with the replicas' count)."""
    import asyncio
    import os
    import signal

    from pyresque import AsyncResque

    queues = queues_on_each_master(rq, cluster)
    stalled = cluster.master_of_slot(key_slot(rq.keys.queue(queues[1]).encode()))
    with redis.Redis.from_url(stalled.url) as master:
        replica = cast("dict[str, Any]", master.info("replication"))["slave0"]
    pid = next(n.pid for n in cluster.nodes if n.port == int(replica["port"]))
    assert pid is not None

    synchronous = Resque(cluster.url(), namespace=rq.namespace, durability=Replicas(1, 300))

    async def scenario() -> None:
        policy = Replicas(1, 300)
        async with AsyncResque(cluster.url(), namespace=rq.namespace, durability=policy) as p:
            assert await p.enqueue_to(queues[0], Answer, 1)  # every master's replica runs
            os.kill(pid, signal.SIGSTOP)  # for less than the 2 s node timeout
            try:
                with pytest.raises(NotReplicated):
                    await p.enqueue_to(queues[1], Answer, 2)
                with pytest.raises(NotReplicated):
                    await p.enqueue_at_to(time.time() + 3600, queues[1], Answer, 3)
                with pytest.raises(NotReplicated):
                    await p.enqueue_many([Enqueued(q, Answer, [4]) for q in queues])
                assert await p.enqueue_to(queues[2], Answer, 5)
                assert await p.enqueue_at_to(time.time() + 3600, queues[0], Answer, 6)
                with pytest.raises(NotReplicated):  # Resque's, alike
                    synchronous.enqueue_at_to(time.time() + 3600, queues[1], Answer, 7)
            finally:
                os.kill(pid, signal.SIGCONT)

    asyncio.run(scenario())
    # Written all the same (the policy says a write may be lost, not that it was).
    assert [rq.size(q) for q in queues] == [2, 2, 2]
    assert rq.delayed_count() == 3  # indexed, though not replicated: not left to the sweep
    synchronous.redis.close()


def test_forget_idle_queues_on_a_cluster_forgets_and_restores(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    rq.enqueue_to("idle-a", Answer, 1)
    rq.enqueue_to("busy-b", Answer, 2)
    assert rq.pop("idle-a") is not None
    assert rq.forget_idle_queues(0) == {"forgotten": [], "restored": []}  # marked
    assert rq.forget_idle_queues(0) == {"forgotten": ["idle-a"], "restored": []}
    assert rq.queues() == ["busy-b"]
    rq.enqueue_to("idle-a", Answer, 3)  # this producer named it before: not again
    assert rq.queues() == ["busy-b"]
    assert rq.forget_idle_queues(0) == {"forgotten": [], "restored": ["idle-a"]}
    assert sorted(rq.queues()) == ["busy-b", "idle-a"]
    assert rq.size("idle-a") == 1


def test_ctl_pauses_resumes_and_quits_a_worker_process_on_a_cluster(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    from e2e_support import Procs

    queue = queues_on_each_master(rq, cluster)[2]
    app = Path(__file__).with_name("results_jobs.py")
    procs = Procs(cluster.url(), tmp_path)
    base = ["--redis-url", cluster.url(), "--namespace", rq.namespace]
    try:
        proc = procs.worker(rq.namespace, queue, "--mode", "inline", app=app)
        [worker] = wait_until(lambda: [w.id for w in list_workers(rq) if w.pyresque], "worker")
        listed = CliRunner().invoke(cli, ["workers", *base])
        assert f"{worker.split(':')[1]}  {queue}" in listed.output, listed.output
        paused = CliRunner().invoke(cli, ["ctl", "pause", worker, *base])
        assert paused.exit_code == 0, paused.output
        wait_until(lambda: [w for w in list_workers(rq) if w.state == "paused"], "paused")
        handle = rq.enqueue_to(queue, Answer, 4)
        assert handle is not None
        time.sleep(1.5)  # several heartbeats and claims would have run by now
        assert rq.size(queue) == 1
        assert CliRunner().invoke(cli, ["ctl", "resume", worker, *base]).exit_code == 0
        assert handle.result(timeout=60)["doubled"] == 8
        assert CliRunner().invoke(cli, ["ctl", "quit", worker, *base]).exit_code == 0
        assert proc.wait_exit(60) == 0
    finally:
        procs.cleanup()


GARBAGE = st.sampled_from(
    [b"", b"\xff\xfe", b"not json", b"[1, 2]", b'{"failed_at": 1e999}', b"NaN", b"9" * 400]
)
NAMES = st.sampled_from(["q0", "q1", "x}y", "{z", "\u00e9t\u00e9"]) | st.text(
    st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(NAMES, min_size=1, max_size=4),
    raw_names=st.lists(st.binary(max_size=8), max_size=3),
    values=st.lists(GARBAGE, min_size=4, max_size=4),
    wrong=st.booleans(),
)
def test_readers_take_any_data_in_any_slot(
    rq: Resque,  # noqa: F811
    names: list[str],
    raw_names: list[bytes],
    values: list[bytes],
    wrong: bool,
) -> None:
    """Whatever the home set names and the queues' slots hold (any bytes, keys of
    another type), the readers answer: problems are noted, never raised."""
    from pyresque.web.metrics import render

    r, keys = rq.redis, rq.keys
    r.delete(keys.home.queues)
    r.sadd(keys.home.queues, *names, *raw_names)
    for raw_name in raw_names:  # an earlier example's queue of that name left its records
        text = raw_name.decode(errors="replace")
        if text.encode() == raw_name:  # UTF-8: the readers look in its slot
            r.delete(keys.for_queue(text).failed)
    for name in names:
        at = keys.for_queue(name)
        r.delete(at.failed, at.stat("processed"), at.worker("w:1:" + name))
        r.rpush(at.failed, values[0], values[1])
        r.set(at.stat("processed"), values[2])
        if wrong:
            r.delete(at.stat("failed"))
            r.hset(at.stat("failed"), "x", values[3])  # a key of another type
    r.delete(keys.home.workers)
    r.sadd(keys.home.workers, *[f"w:1:{name}" for name in names])
    problems = Problems()
    totals = counts(rq, problems)
    assert totals["failed"] == 2 * len(set(names))
    assert rq.failures.count() == 2 * len(set(names))
    assert len(rq.failures.list(-3, 3)) == min(3, 2 * len(set(names)))
    page = admin_failures.failed_page(rq, 0, 5, FailureFilter.of(text="json"))
    assert page["total"] == 2 * len(set(names))
    assert len(list_workers(rq)) == len(set(names))
    assert workers_page(rq)["total"] == len(set(names))
    assert job_page(rq, "some-id")["status"] is None
    assert rq.status("some-id") is None
    assert b"resque_up" in render(rq)
    rq.forget_idle_queues(0)
