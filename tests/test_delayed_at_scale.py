"""Delayed jobs found by id without reading every list, and counted a thousand
seconds per call."""

from __future__ import annotations

import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import Events, Job, Resque
from pyresque.client.admin import delayed as admin
from pyresque.protocol.delayed import item_json
from pyresque.protocol.delayed_lookup import by_id
from pyresque.protocol.payload import Payload


class Later(Job):
    def perform(self) -> None:
        pass


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    return Resque(redis_url, namespace=namespace, events=Events())


def test_cancel_by_id_reads_the_index(rq: Resque, redis_client: redis.Redis) -> None:
    when = time.time() + 3600
    ids = [rq.enqueue_at(when + (i % 3), "q", Later, {"n": i}) for i in range(9)]
    target = ids[4]
    assert target is not None
    index = rq.keys.delayed_id(target)
    due = int(redis_client.get(index) or 0)
    assert due == int(when + 1) + (1 if when % 1 else 0)
    assert 0 < redis_client.ttl(index) - (due - time.time()) <= 86400 + 5
    redis_client.delete(rq.keys.timestamps("nothing"))
    assert rq.remove_delayed(job_id=target) == 1
    assert rq.remove_delayed(job_id=target) == 0  # indexed, and gone from its list
    assert rq.delayed_count() == 8
    assert sorted(j.id or "" for j in rq.delayed_jobs(0, 100)) == sorted(
        i for i in ids if i and i != target
    )


def test_an_unindexed_job_is_found_through_its_timestamps_key(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """A retry (scheduled by the finish script) or a job scheduled before the index."""
    ts = int(time.time()) + 3600
    for job_id in ("abc", "a*c", "a?c", "[ab]c", "a\\c"):
        rq.delayed.schedule(ts, item_json(Payload("Later", [1], job_id, "", None), "q"))
    for job_id in ("a*c", "abc", "[ab]c", "a\\c", "a?c"):
        found = by_id(rq.redis, rq.keys, job_id)
        assert [j.id for j in found] == [job_id]
        assert found[0].timestamp == ts
    assert rq.remove_delayed(job_id="a*c") == 1
    assert sorted(j.id or "" for j in rq.delayed_jobs()) == sorted(["abc", "a?c", "[ab]c", "a\\c"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8), pick=st.integers(0, 7)
)
def test_unindexed_lookup_matches_exactly(
    rq: Resque, redis_client: redis.Redis, ids: list[str], pick: int
) -> None:
    for key in redis_client.scan_iter(match=f"{rq.keys.prefix}*"):
        redis_client.delete(key)
    ts = int(time.time()) + 3600
    for n, job_id in enumerate(ids):
        rq.delayed.schedule(ts + n % 2, item_json(Payload("Later", [n], job_id, "", None), "q"))
    wanted = ids[pick % len(ids)]
    found = by_id(rq.redis, rq.keys, wanted)
    assert sorted(j.payload.args[0] for j in found if j.payload) == [
        n for n, i in enumerate(ids) if i == wanted
    ]


def test_count_reads_lengths_whatever_the_keys_hold(rq: Resque, redis_client: redis.Redis) -> None:
    when = time.time() + 3600
    for i in range(5):
        rq.enqueue_at(when + i, "q", Later, {"n": i})
    redis_client.zadd(rq.keys.delayed_schedule, {"12345": 12345})
    redis_client.set(rq.keys.delayed(12345), "not a list")
    assert admin.count(rq) == 5
