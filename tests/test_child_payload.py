"""What a job's child process is sent (executors/forking.py): the payload's bytes as the
worker claimed them when no ``around_process`` step ran (nothing may have changed it:
``Job.raw_payload``), else the payload as the chain left it, encoded again. Either
way the child's job has the payload the worker decoded."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pyresque import Job, Resque
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import Work
from pyresque.protocol.payload import Payload
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker


class ChildRecords(Job):
    """Writes what its process sees of its payload to the list named in its first arg."""

    def perform(self, *args: Any) -> None:
        seen = {"payload": self.payload.to_dict(), "pid": os.getpid()}
        target = self.arguments[0]
        client = redis.Redis.from_url(target["url"])
        client.rpush(target["key"], json.dumps(seen))
        client.close()


class ChildBumps(ChildRecords):
    """Changes its payload as it is made: made once per process that runs it."""

    def __init__(self, payload: Payload, queue: str) -> None:
        super().__init__(payload, queue)
        payload.args[0]["made"] = payload.args[0].get("made", 0) + 1


class _Marks:
    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        assert work.payload is not None
        work.payload.args[0]["marked"] = True
        return next()


def _run(rq: Resque, mode: str) -> None:
    Worker(rq, "q", WorkerOptions(interval=0, mode=mode, concurrency=1)).work()


def _seen(rq: Resque, key: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in rq.redis.lrange(key, 0, -1)]


@pytest.fixture
def target(redis_url: str, namespace: str) -> dict[str, str]:
    return {"url": redis_url, "key": f"{namespace}:seen"}


@pytest.mark.parametrize("mode", ["prefork", "fork"])
def test_a_child_sees_the_payload_as_the_worker_decoded_it(
    rq: Resque, target: dict[str, str], mode: str
) -> None:
    """A payload written by another producer (spacing, field order, escapes, an extra
    field, big numbers): the child's job has what the worker decoded, field for field."""
    args = json.dumps([{**target, "text": "caf\u00e9 \u2603", "big": 2**70, "x": 1.5e-300}])
    raw = (
        '{ "args" : ' + args + ', "class": "ChildRecords", "queue_time": 1700000000.25,'
        ' "id": "abc", "retry_note": {"a": [1, null]}, "prefix": "" }'
    ).encode()
    rq.redis.rpush(rq.keys.queue("q"), raw)
    rq.redis.sadd(rq.keys.queues, "q")
    _run(rq, mode)
    [seen] = _seen(rq, target["key"])
    assert seen["payload"] == json.loads(json.dumps(Payload.decode(raw).to_dict()))
    assert seen["pid"] != os.getpid()


@pytest.mark.parametrize("mode", ["prefork", "fork"])
def test_a_bare_jobs_child_is_sent_the_claimed_bytes(
    rq: Resque, target: dict[str, str], mode: str
) -> None:
    """Made from the claimed bytes, the child's job is made once from them, as in the
    worker: not from the worker's copy, which its constructor had changed already."""
    rq.enqueue("q", ChildBumps, dict(target))
    _run(rq, mode)
    [seen] = _seen(rq, target["key"])
    assert seen["payload"]["args"][0]["made"] == 1


@pytest.mark.parametrize("mode", ["prefork", "fork"])
def test_what_a_middleware_changed_reaches_the_child(
    rq: Resque, target: dict[str, str], mode: str
) -> None:
    rq.events.add(_Marks())
    rq.enqueue("q", ChildRecords, dict(target))
    _run(rq, mode)
    [seen] = _seen(rq, target["key"])
    assert seen["payload"]["args"][0]["marked"] is True
