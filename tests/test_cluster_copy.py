"""``pyresque cluster-copy``: a single Redis namespace's queued jobs moved into the
Redis Cluster layout (client/admin/cluster_copy.py), against the session's real Redis
and a real 3-master cluster."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_support import cluster  # noqa: F401  (fixture)
from pyresque import Enqueued, Job, Resque, Status
from pyresque.cli.main import main as cli
from pyresque.cli.main import without_settings
from pyresque.client.admin.cluster_copy import ClusterCopy
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.protocol.connection import connect
from pyresque.protocol.delayed import DelayedJob
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from pyresque.scheduling.scheduler import Scheduler
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

_queue_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)


class Append(Job):
    """Appends a line ``tag`` to the file ``path`` (the runs, outside Redis)."""

    @staticmethod
    def perform(path: str, tag: str) -> None:
        with open(path, "a") as runs:
            runs.write(f"{tag}\n")


@pytest.fixture
def target(cluster: ClusterGroup) -> Iterator[redis.Redis]:  # noqa: F811
    client = connect(cluster.url())
    yield client
    client.close()


def copy_cli(source_url: str, cluster_url: str, namespace: str, *extra: str) -> tuple[int, str]:
    args = ["cluster-copy", "--from", source_url, "--to", cluster_url, "--namespace", namespace]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_queues_are_copied_then_run_by_a_cluster_worker(
    rq: Resque,
    redis_url: str,
    namespace: str,
    cluster: ClusterGroup,  # noqa: F811
    target: redis.Redis,
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "ran")
    queues = ["high", "mail", "low"]
    for queue in queues:
        for i in range(3):
            rq.enqueue_to(queue, Append, log, f"{queue}-{i}")
    code, out = copy_cli(redis_url, cluster.url(), namespace)
    assert code == 0, out
    for queue in queues:
        assert f"{queue}: 3 jobs copied" in out
        assert rq.redis.llen(rq.keys.queue(queue)) == 0
    keys = Keys.for_namespace(namespace, cluster=True)
    assert set(target.smembers(keys.home.queues)) == {q.encode() for q in queues}
    assert all(target.llen(keys.wake(q)) == 1 for q in queues)  # idle workers woken
    on_cluster = Resque(cluster.url(), namespace=namespace)
    Worker(on_cluster, ",".join(queues), WorkerOptions(interval=0, mode="inline")).work()
    with open(log) as runs:
        assert runs.read().split() == [f"{q}-{i}" for q in queues for i in range(3)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.binary(min_size=1, max_size=12),
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=8),
)
def test_hostile_bytes_arrive_identical(
    redis_client: redis.Redis,
    namespace: str,
    target: redis.Redis,
    name: bytes,
    payloads: list[bytes],
) -> None:
    source_keys = Keys.for_namespace(namespace)
    redis_client.sadd(source_keys.queues, name)
    redis_client.rpush(source_keys.queue_key(name), *payloads)
    copy = ClusterCopy(redis_client, target, namespace)
    before = target.lrange(copy.target_keys.queue_key(name), 0, -1)
    assert name in copy.queues()
    done = copy.copy_queue(name)
    assert (done.copied, done.taken_meanwhile) == (len(payloads), 0)
    assert target.lrange(copy.target_keys.queue_key(name), 0, -1) == before + payloads
    assert redis_client.llen(source_keys.queue_key(name)) == 0
    assert name in target.smembers(copy.target_keys.home.queues)


def test_jobs_an_old_worker_takes_during_the_copy_are_counted_not_lost(
    redis_client: redis.Redis, namespace: str, target: redis.Redis
) -> None:
    source_keys = Keys.for_namespace(namespace)
    jobs = [f"job-{i}".encode() for i in range(2000)]
    redis_client.rpush(source_keys.queue("q"), *jobs)
    popped: list[bytes] = []

    def old_worker() -> None:  # pops as a Resque worker does, while the copy runs
        while isinstance(job := redis_client.lpop(source_keys.queue("q")), bytes):
            popped.append(job)

    copy = ClusterCopy(redis_client, target, namespace)
    taking = threading.Thread(target=old_worker)
    taking.start()
    done = copy.copy_queue(b"q")
    taking.join(timeout=120)
    arrived = target.lrange(copy.target_keys.queue("q"), 0, -1)
    assert len(arrived) == len(set(arrived)) == done.copied
    assert set(arrived) | set(popped) == set(jobs)  # none lost
    assert len(set(arrived) & set(popped)) == done.taken_meanwhile  # each twice is counted


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM])
def test_a_copy_killed_midway_and_run_again_loses_nothing(
    stop_signal: signal.Signals,
    redis_client: redis.Redis,
    redis_url: str,
    namespace: str,
    cluster: ClusterGroup,  # noqa: F811
    target: redis.Redis,
) -> None:
    source_keys, cluster_keys = (
        Keys.for_namespace(namespace),
        Keys.for_namespace(namespace, cluster=True),
    )
    queues, per_queue = ["first", "second"], 4000
    jobs = {q: [f"{q}-{i}".encode() for i in range(per_queue)] for q in queues}
    for queue in queues:
        redis_client.sadd(source_keys.queues, queue)
        redis_client.rpush(source_keys.queue(queue), *jobs[queue])
    args = ["cluster-copy", "--from", redis_url, "--to", cluster.url(), "--namespace", namespace]
    copying = subprocess.Popen(
        [sys.executable, "-m", "pyresque.cli", *args],
        env=without_settings(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while target.llen(cluster_keys.queue("first")) < 100:
        assert copying.poll() is None, "the copy ended before it was killed"
        assert time.monotonic() < deadline, "the copy did not start"
        time.sleep(0.01)
    os.kill(copying.pid, stop_signal)
    _, said = copying.communicate(timeout=120)
    assert redis_client.llen(source_keys.queue("first")) > 0  # killed mid-way
    if stop_signal == signal.SIGTERM:  # stopped after the job in hand: one line, exit 1
        assert copying.returncode == 1, said
        assert said.strip().splitlines() == [
            "pyresque: error: stopped; run the same command again to copy the rest"
        ]
    code, out = copy_cli(redis_url, cluster.url(), namespace)
    assert code == 0, out
    for queue in queues:
        assert redis_client.llen(source_keys.queue(queue)) == 0
        arrived = target.lrange(cluster_keys.queue(queue), 0, -1)
        counts = collections.Counter(arrived)
        assert set(counts) == set(jobs[queue])  # none lost
        # At most one twice after a SIGKILL; none after a TERM.
        assert sum(counts.values()) - per_queue <= (stop_signal == signal.SIGKILL)
        assert list(dict.fromkeys(arrived)) == jobs[queue]  # in order


def test_the_report_counts_what_is_left_behind_and_dry_run_copies_nothing(
    rq: Resque,
    redis_url: str,
    namespace: str,
    cluster: ClusterGroup,  # noqa: F811
    target: redis.Redis,
) -> None:
    rq.enqueue_to("mail", Append, "/dev/null", "x")
    rq.enqueue_to("mail", Append, "/dev/null", "y")
    rq.enqueue_in_to(3600, "mail", Append, "/dev/null", "later")
    rq.enqueue_in_to(7200, "mail", Append, "/dev/null", "later")
    rq.redis.rpush(rq.keys.failed, b"{}", b"{}", b"{}")
    rq.redis.set(rq.keys.stat("processed"), 41)
    rq.redis.set(rq.keys.stat("failed"), 3)
    rq.enqueue_in_to(3600, "other", Append, "/dev/null", "later")
    left = [
        "left behind: 3 failures (not copied with --queue)",
        "left behind: stats (processed 41, failed 3)",
    ]
    code, out = copy_cli(redis_url, cluster.url(), namespace, "--dry-run")
    assert code == 0, out
    assert "failed: 3 records to copy" in out
    assert "mail: 2 jobs to copy" in out
    assert "delayed: 3 jobs (at 2 timestamps) to copy" in out
    assert left[1] in out, out
    assert rq.redis.llen(rq.keys.queue("mail")) == 2
    assert target.llen(Keys.for_namespace(namespace, cluster=True).queue("mail")) == 0
    code, out = copy_cli(redis_url, cluster.url(), namespace, "--queue", "mail")
    assert code == 0, out
    assert "mail: 2 jobs copied" in out
    assert "delayed: 2 jobs copied" in out
    assert "left behind: 1 delayed jobs (at 1 timestamps)" in out  # other's
    assert all(line in out for line in left), out
    assert target.llen(Keys.for_namespace(namespace, cluster=True).queue("mail")) == 2


def test_failures_are_copied_to_their_queues_slots_and_retried_there(
    rq: Resque,
    redis_url: str,
    namespace: str,
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "ran")
    rq.redis.sadd(rq.keys.queues, "mail")
    records = [
        failure_record({"class": "Append", "args": [log, "again"]}, "E", "e", [], "w", "mail"),
        failure_record({"class": "Append", "args": [log, "x"]}, "E", "e", [], "w", "gone"),
    ]
    rq.redis.rpush(rq.keys.failed, *records, b"\xff not a record")
    code, out = copy_cli(redis_url, cluster.url(), namespace)
    assert code == 0, out
    assert "failed: 3 records copied" in out
    assert "failures (" not in out, out  # none left behind
    assert rq.redis.llen(rq.keys.failed) == 0
    on_cluster = Resque(cluster.url(), namespace=namespace)
    keys = on_cluster.keys
    assert [f.raw for f in on_cluster.failures] == [
        records[1].encode(),  # the home slot's list first: queues the source did not know
        b"\xff not a record",
        records[0].encode(),
    ]
    assert on_cluster.redis.lrange(keys.for_queue("mail").failed, 0, -1) == [records[0].encode()]
    assert on_cluster.failures.requeue(2)
    Worker(on_cluster, "mail", WorkerOptions(interval=0, mode="inline")).work()
    assert Path(log).read_text().split() == ["again"]
    on_cluster.redis.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.one_of(
            st.binary(max_size=30),
            st.builds(
                lambda queue: json.dumps({"failed_at": "1", "queue": queue}).encode(),
                st.one_of(st.sampled_from(["a", "b", ""]), _queue_names, st.integers()),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_failure_record_arrives_identical_in_one_list_of_the_cluster(
    redis_client: redis.Redis,
    target: redis.Redis,
    cluster: ClusterGroup,  # noqa: F811
    records: list[bytes],
) -> None:
    namespace = f"h{uuid.uuid4().hex[:8]}"
    source = Keys.for_namespace(namespace)
    redis_client.sadd(source.queues, "a", "b")
    redis_client.rpush(source.failed, *records)
    assert ClusterCopy(redis_client, target, namespace).copy_failures() == len(records)
    assert redis_client.llen(source.failed) == 0
    on_cluster = Resque(cluster.url(), namespace=namespace)
    assert sorted(f.raw for f in on_cluster.failures) == sorted(records)
    on_cluster.redis.close()


def test_delayed_jobs_are_copied_to_their_queues_slots_and_moved_when_due(
    rq: Resque,
    redis_url: str,
    namespace: str,
    cluster: ClusterGroup,  # noqa: F811
    target: redis.Redis,
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "ran")
    soon = int(time.time()) + 3
    tracked = str(rq.schedule(soon, Enqueued("mail", Append, [log, "tracked"], True)))
    rq.enqueue_at_to(soon, "high", Append, log, "plain")
    rq.enqueue_at_to(soon + 3600, "high", Append, log, "later")
    ruby = json.dumps({"class": "Append", "args": [log, "ruby"], "queue": "low"})
    rq.redis.rpush(rq.keys.delayed(soon), ruby, b"\xff not a job")
    rq.redis.zadd(rq.keys.delayed_schedule, {str(soon): soon})
    copy = ClusterCopy(rq.redis, target, namespace)
    # Stopped after its first job, then run again: each job once, none lost.
    asked = iter(range(10))
    assert copy.copy_delayed(stop=lambda: next(asked) > 1) == 1
    assert copy.copy_delayed() == 3
    assert copy.left_behind().delayed_jobs == 1  # the item that is not a job stays
    on_cluster = Resque(cluster.url(), namespace=namespace)
    assert on_cluster.delayed_count() == 4
    assert on_cluster.status(tracked) == Status.WAITING
    assert rq.status(tracked) == Status.WAITING  # the source's, left to expire
    assert Scheduler(on_cluster).tick(now=soon + 1) == 3  # through the home index
    assert on_cluster.delayed_count() == 1
    Worker(on_cluster, "mail,high,low", WorkerOptions(interval=0, mode="inline")).work()
    assert sorted(Path(log).read_text().split()) == ["plain", "ruby", "tracked"]
    assert on_cluster.status(tracked) == Status.COMPLETE


def test_urls_on_the_wrong_side_are_one_line_errors(redis_url: str, cluster: ClusterGroup) -> None:  # noqa: F811
    for source, to, said in (
        (redis_url, redis_url, "--to must be a Redis Cluster URL"),
        (cluster.url(), cluster.url(), "--from must be a single Redis"),
        (redis_url, "redis+cluster://", "redis+cluster://"),
    ):
        code, out = copy_cli(source, to, "ns")
        lines = out.strip().splitlines()
        assert code == 2, out
        assert len(lines) == 1, out
        assert lines[0].startswith("pyresque: error: "), out
        assert said in lines[0], out


def test_an_unreachable_side_is_named_by_its_option(redis_url: str, cluster: ClusterGroup) -> None:  # noqa: F811
    for source, to, said in (
        (redis_url, "redis+cluster://127.0.0.1:1/", "--to"),
        ("redis://127.0.0.1:1/0", cluster.url(), "--from"),
    ):
        code, out = copy_cli(source, to, "ns")
        lines = out.strip().splitlines()
        assert code == 1, out
        assert len(lines) == 1, out
        assert "cannot reach Redis" in lines[0], out
        assert said in lines[0], out
        assert "REDIS_URL" not in lines[0], out


_items = st.one_of(
    st.builds(
        lambda queue, args, job_id: json.dumps(
            {"class": "Append", "args": args, "queue": queue, **({"id": job_id} if job_id else {})}
        ).encode(),
        st.one_of(st.sampled_from(["a", "b"]), _queue_names),
        st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=2),
        st.one_of(st.none(), st.text(st.characters(codec="ascii"), min_size=1, max_size=8)),
    ),
    st.binary(max_size=20),  # not an item
    st.sampled_from([b'{"class":"A","args":[]}', b'{"class":"A","args":[],"queue":""}', b"[]"]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 3).map(str), st.text(max_size=4)),  # the member
            st.one_of(st.integers(-5, 5).map(float), st.sampled_from([1.5, math.inf, 2.0**60])),
            st.lists(_items, min_size=1, max_size=3),
        ),
        max_size=4,
        unique_by=lambda e: e[0],
    )
)
def test_whatever_the_schedule_holds_each_job_is_copied_once_and_the_rest_stays(
    redis_client: redis.Redis,
    target: redis.Redis,
    cluster: ClusterGroup,  # noqa: F811
    entries: list[tuple[str, float, list[bytes]]],
) -> None:
    namespace = f"h{uuid.uuid4().hex[:8]}"
    source = Keys.for_namespace(namespace)
    expected: list[tuple[int, bytes]] = []
    stays: list[bytes] = []
    for member, score, items in entries:
        redis_client.zadd(source.delayed_schedule, {member: score})
        redis_client.rpush(f"{source.prefix}delayed:{member}", *items)
        for item in items:
            if abs(score) < 2**53 and not DelayedJob.decode(int(score), item).problem:
                expected.append((int(score), item))
            else:
                stays.append(item)
    copy = ClusterCopy(redis_client, target, namespace)
    assert copy.copy_delayed() == len(expected)
    left = [
        item
        for member, _, _ in entries
        for item in redis_client.lrange(f"{source.prefix}delayed:{member}", 0, -1)
    ]
    assert sorted(left) == sorted(stays)
    assert copy.left_behind().delayed_jobs == len(stays)
    on_cluster = Resque(cluster.url(), namespace=namespace)
    assert sorted((job.timestamp, job.raw) for job in on_cluster.delayed) == sorted(expected)
    on_cluster.redis.close()
