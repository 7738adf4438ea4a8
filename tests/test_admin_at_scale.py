"""Pages and counts that read one length per queue or worker, a thousand keys per
script call, and list a page at a time (whatever the keys hold)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import Events, Resque, Unique
from pyresque.cli.main import main as cli
from pyresque.client import removal
from pyresque.client.admin import base, queues, stats, workers
from pyresque.client.admin.base import Problems


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    return Resque(redis_url, namespace=namespace, events=Events())


def add_queues(client: redis.Redis, rq: Resque, sizes: dict[str, int]) -> None:
    for name, size in sizes.items():
        client.sadd(rq.keys.queues, name)
        if size:
            client.rpush(
                rq.keys.queue(name), *[json.dumps({"class": "J", "args": [i]}) for i in range(size)]
            )


def add_workers(client: redis.Redis, rq: Resque, count: int) -> list[str]:
    ids = [f"host{i % 3}:{1000 + i}:default" for i in range(count)]
    for i, wid in enumerate(ids):
        client.sadd(rq.keys.workers, wid)
        if i % 3 == 0:  # every third one runs a job
            job = {
                "queue": "default",
                "run_at": "2026-01-12T20:23:55Z",
                "payload": {"class": "J", "args": []},
            }
            client.set(rq.keys.worker(wid), json.dumps(job))
    return ids


KINDS = st.one_of(
    st.just(("none", 0)),
    st.tuples(st.sampled_from(("list", "string", "hash", "set")), st.integers(1, 5)),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(KINDS, max_size=30),
    command=st.sampled_from(("LLEN", "STRLEN")),
    chunk=st.integers(1, 7),
    per_trip=st.integers(1, 3),
)
def test_lengths_match_a_model_for_keys_of_any_type(
    rq: Resque,
    redis_client: redis.Redis,
    kinds: list[tuple[str, int]],
    command: str,
    chunk: int,
    per_trip: int,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(base, "_LENGTHS_CHUNK", chunk)
    monkeypatch.setattr(base, "_CALLS_PER_TRIP", per_trip)  # several round trips too
    keys = [f"{rq.keys.prefix}len:{i}" for i in range(len(kinds))]
    if keys:
        redis_client.delete(*keys)
    expected = []
    for key, (kind, n) in zip(keys, kinds, strict=True):
        if kind == "list":
            redis_client.rpush(key, *["x"] * n)
        elif kind == "string":
            redis_client.set(key, "x" * n)
        elif kind == "hash":
            redis_client.hset(key, mapping={str(i): "v" for i in range(n)})
        elif kind == "set":
            redis_client.sadd(key, *[str(i) for i in range(n)])
        wanted = "list" if command == "LLEN" else "string"
        expected.append(0 if kind == "none" else n if kind == wanted else -1)
    assert base.lengths(rq.redis, keys, command) == expected


def test_queues_page_pages_every_queue_once(rq: Resque, redis_client: redis.Redis) -> None:
    sizes = {f"q{i:03d}": i % 4 for i in range(120)}
    add_queues(redis_client, rq, sizes)
    redis_client.sadd(rq.keys.queues, "bad")
    redis_client.set(rq.keys.queue("bad"), "not a list")
    seen: list[str] = []
    for start in range(0, 200, queues.QUEUES_PER_PAGE):
        page = queues.queues_page(rq, start=start)
        assert page["total"] == 121
        assert page["pending"] == sum(sizes.values())  # the bad key counts 0
        seen += [q["name"] for q in page["queues"]]
        assert {q["name"]: q["size"] for q in page["queues"]}.items() <= {**sizes, "bad": 0}.items()
    assert seen == sorted([*sizes, "bad"])
    assert queues.sizes(rq) == {**sizes, "bad": 0}


def test_overview_shows_the_longest_queues_and_the_first_running_workers(
    rq: Resque, redis_client: redis.Redis
) -> None:
    sizes = {f"q{i:03d}": i for i in range(60)}
    add_queues(redis_client, rq, sizes)
    ids = add_workers(redis_client, rq, 90)
    redis_client.sadd(rq.keys.workers, "odd:1:x")
    redis_client.rpush(rq.keys.worker("odd:1:x"), "a list, not a job")  # not counted as working
    page = stats.overview_page(rq)
    assert [q["name"] for q in page["queues"]] == [f"q{i:03d}" for i in range(59, 39, -1)]
    working = sorted(w for i, w in enumerate(ids) if i % 3 == 0)
    assert page["counts"]["working"] == len(working) == 30
    assert page["counts"]["workers"] == 91
    assert page["counts"]["queues"] == 60
    assert page["counts"]["pending"] == sum(sizes.values())
    assert [w["id"] for w in page["running"]] == working[: stats.OVERVIEW_LIMIT]
    assert all(w["job"]["class_name"] == "J" for w in page["running"])


def test_workers_page_pages_every_worker_once(rq: Resque, redis_client: redis.Redis) -> None:
    ids = add_workers(redis_client, rq, 120)
    seen: list[str] = []
    for start in range(0, 150, workers.WORKERS_PER_PAGE):
        page = workers.workers_page(rq, start=start)
        assert (page["total"], page["working"], page["idle"], page["dead"]) == (120, 40, 80, 0)
        seen += [w["id"] for h in page["hosts"] for w in h["workers"]]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(ids)


def test_info_lists_the_top_of_each_and_all_on_request(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    add_queues(redis_client, rq, {f"q{i:03d}": i for i in range(30)})
    add_workers(redis_client, rq, 90)
    args = ["info", "--redis-url", redis_url, "--namespace", namespace]
    out = CliRunner().invoke(cli, args).output
    assert "q029" in out
    assert "q009" not in out
    assert "(the 20 longest of 30 queues; --all for every one)" in out
    assert "(20 of 90 workers; --all for every one)" in out
    everything = CliRunner().invoke(cli, [*args, "--all"]).output
    assert "q009" in everything
    assert "workers;" not in everything
    assert stats.info(rq)["working"] == 30
    assert stats.counts(rq, Problems())["working"] == 30


def test_remove_queue_releases_locks_and_ends_statuses_a_chunk_at_a_time(
    rq: Resque, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(removal, "_CHUNK", 7)
    tracked = [rq.enqueue("big", "Job", {"n": i}, track_status=True) for i in range(30)]
    unique = [rq.enqueue_to("big", "Job", i, unique=Unique(until="finished")) for i in range(5)]
    rq.enqueue("big", "Job", {"plain": 1})
    redis_client.rpush(rq.keys.queue("big"), b"\xffnot json")
    assert rq.remove_queue("big") == 37
    assert not redis_client.exists(rq.keys.queue("big"))
    assert b"big" not in redis_client.smembers(rq.keys.queues)
    for job_id in tracked:
        assert 0 < redis_client.ttl(rq.keys.status(str(job_id))) <= 86400
    assert all(u is not None for u in unique)
    assert redis_client.keys(f"{rq.keys.prefix}pyresque:unique:*") == []
    assert redis_client.keys(f"{rq.keys.prefix}pyresque:removed-queue:*") == []
    assert rq.enqueue("big", "Job", {}) is not None  # the queue starts afresh
    assert rq.size("big") == 1


def test_dequeue_reads_a_chunk_at_a_time_and_misses_nothing_while_workers_pop(
    rq: Resque, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read from the tail, a job keeps its place while a worker pops the head between
    two chunks. (Read from the head 7 at a time with a pop after each read, the jobs
    at 8k+7 would slip past the reader: 31 and 47 here.)"""
    monkeypatch.setattr(queues, "_CHUNK", 7)
    key = rq.keys.queue("big")
    items = [{"class": "J", "args": [i]} for i in range(60)]
    for position in (31, 47):
        items[position] = {"class": "J", "args": [], "id": "wanted"}
    redis_client.rpush(key, *[json.dumps(item) for item in items])
    lrange = rq.redis.lrange

    def popping(name: Any, start: int, end: int) -> Any:
        found = lrange(name, start, end)
        assert len(found) <= 7  # never the whole list in one command
        redis_client.lpop(key)  # a worker takes the head between two reads
        return found

    monkeypatch.setattr(rq.redis, "lrange", popping)
    assert queues.dequeue(rq, "big", job_id="wanted") == 2
    assert all(json.loads(i).get("id") != "wanted" for i in redis_client.lrange(key, 0, -1))


def test_tracked_jobs_removed_unrun_get_a_finished_jobs_ttl(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """dequeue and the dashboard's remove-job: the status key does not say "waiting"
    forever."""
    by_id = str(rq.enqueue("q", "Job", {"n": 1}, track_status=True))
    by_bytes = str(rq.enqueue("q", "Job", {"n": 2}, track_status=True))
    kept = str(rq.enqueue("q", "Job", {"n": 3}, track_status=True))
    assert redis_client.ttl(rq.keys.status(by_id)) == -1  # waiting: no TTL, as php-resque
    assert rq.dequeue("q", job_id=by_id) == 1
    listed = cast("list[bytes]", redis_client.lrange(rq.keys.queue("q"), 0, -1))
    [item] = [i for i in listed if by_bytes.encode() in i]
    assert rq.remove("q", [item]) == 1
    for job_id in (by_id, by_bytes):
        assert 0 < redis_client.ttl(rq.keys.status(job_id)) <= 86400
    assert redis_client.ttl(rq.keys.status(kept)) == -1
