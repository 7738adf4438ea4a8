"""Worker listings and /metrics read workers a chunk at a time: a few multi-key
commands per 200 workers, never commands per worker, and the same states either way."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from pyresque import Events, Resque
from pyresque.cli.main import main as cli
from pyresque.client.admin import cancel, workers
from pyresque.client.admin.base import Problems
from pyresque.client.admin.workers import Census, WorkerStates, list_workers
from pyresque.web import metrics


class CountingConnection(Connection):
    """Counts the commands this process sends (a pipeline's one by one), and the round
    trips (a pipeline is one)."""

    sent = 0
    trips = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.trips += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def pack_command(self, *args: Any) -> Any:
        CountingConnection.sent += 1
        return super().pack_command(*args)  # type: ignore[no-untyped-call]

    def pack_commands(self, commands: Any) -> Any:
        commands = list(commands)
        CountingConnection.sent += len(commands)
        return super().pack_commands(commands)  # type: ignore[no-untyped-call]


def add_workers(client: redis.Redis, rq: Resque, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        wid = f"host{i % 7}:{1000 + i}:q{i % 3}"
        pipe.sadd(rq.keys.workers, wid)
        pipe.set(rq.keys.worker_started(wid), "2026-01-12 15:23:55 -0500")
        if i % 2 == 0:
            job = {"queue": f"q{i % 3}", "run_at": "2026-01-12T20:23:55Z", "payload": {}}
            pipe.set(rq.keys.worker(wid), json.dumps(job))
    pipe.execute()


def test_listing_and_metrics_send_a_few_commands_per_chunk_of_workers(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    rq = Resque(redis.Redis(connection_pool=pool), namespace=namespace, events=Events())
    add_workers(redis_client, rq, 1000)
    CountingConnection.sent = 0
    listed = list_workers(rq)
    assert len(listed) == 1000
    assert all(w.started == "2026-01-12 15:23:55 -0500" for w in listed)
    assert sum(w.state == "working" for w in listed) == 500
    assert CountingConnection.sent < 60  # was 7 per worker (7,002)
    CountingConnection.sent = 0
    body = metrics.render(rq).decode()
    assert f'resque_workers{{namespace="{namespace}",state="working"}} 500.0' in body
    assert CountingConnection.sent < 60  # was 7 per worker, and 2 per queue


STATES = st.fixed_dictionaries(
    {
        "job": st.sampled_from(["none", "json", "junk", "list"]),
        "paused": st.booleans(),
        "lease": st.sampled_from(["none", "live", "expired"]),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=st.lists(STATES, max_size=25), pause_all=st.booleans(), chunk=st.integers(1, 6))
def test_worker_states_match_the_listing(
    rq: Resque,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    specs: list[dict[str, Any]],
    pause_all: bool,
    chunk: int,
) -> None:
    """The counts /metrics gives are those of the full listing, whatever the keys hold."""
    monkeypatch.setattr(workers, "_READ_CHUNK", chunk)
    k = rq.keys
    redis_client.delete(k.workers, k.leases, k.pause_all)
    now_ms = int(redis_client.time()[0]) * 1000
    for i, spec in enumerate(specs):
        wid = f"h:{i}:q{i % 2},x"
        redis_client.delete(k.worker(wid), k.paused(wid))
        redis_client.sadd(k.workers, wid)
        if spec["job"] == "json":
            redis_client.set(k.worker(wid), json.dumps({"queue": f"q{i % 2}", "payload": {}}))
        elif spec["job"] == "junk":
            redis_client.set(k.worker(wid), b"\xff not json")
        elif spec["job"] == "list":
            redis_client.rpush(k.worker(wid), "a list, not a job")
        if spec["paused"]:
            redis_client.set(k.paused(wid), "1")
        if spec["lease"] != "none":
            redis_client.zadd(
                k.leases, {wid: now_ms + (60_000 if spec["lease"] == "live" else -60_000)}
            )
    if pause_all:
        redis_client.set(k.pause_all, "true")
    listed = list_workers(rq)
    problems = Problems()
    read = WorkerStates.read(rq, problems, Census.read(rq, problems))
    assert +read.states == Counter(w.state for w in listed)
    assert read.running == Counter(
        str(w.job.get("queue", "")) for w in listed if w.job and w.state == "working"
    )


def test_workers_command_pages(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    add_workers(redis_client, rq, 30)
    args = ["workers", "--redis-url", redis_url, "--namespace", namespace, "--json"]
    every = json.loads(CliRunner().invoke(cli, args).output)
    assert len(every) == 30
    first = json.loads(CliRunner().invoke(cli, [*args, "--limit", "10"]).output)
    rest = json.loads(CliRunner().invoke(cli, [*args, "--offset", "10"]).output)
    assert [w["id"] for w in first + rest] == [w["id"] for w in every]
    shown = CliRunner().invoke(cli, [*args[:-1], "--limit", "5"]).output
    assert "(5 of 30 workers from 0; --offset/--limit for others)" in shown


def test_finding_the_worker_running_a_job_reads_workers_a_chunk_at_a_time(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    rq = Resque(redis.Redis(connection_pool=pool), namespace=namespace, events=Events())
    pipe = redis_client.pipeline(transaction=False)
    for i in range(1000):
        pipe.zadd(rq.keys.leases, {f"h:{i}:q": 2**40})
    record = {"payload": json.dumps({"class": "J", "args": [], "id": "wanted"})}
    pipe.hset(rq.keys.inflight("h:999:q"), "tok", json.dumps(record))
    pipe.execute()
    CountingConnection.trips = 0
    assert cancel.running_on(rq, "wanted") == "h:999:q"
    assert CountingConnection.trips < 20  # was 2 per live worker
    assert cancel.running_on(rq, "other") is None
