"""A worker that starts under the id of one that died (a container restarted with its
hostname, the worker its pid 1 again): the dead one's lease is the new one's, so no
other worker ever recovers what it held. The new one gives it back before its first
claim, as a crash (it was running when its worker died)."""

from __future__ import annotations

import json

import pytest

from pyresque import Events, Job, Resque
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import landing_key, processor_key, processor_member, registry
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

RUNS: list[object] = []


class ReusedIdJob(Job):
    def perform(self) -> None:
        RUNS.append(self.args)


def _stranded(rq: Resque, keys: Keys, worker_id: str, mode: str, payload: bytes) -> None:
    """What a SIGKILL of the first worker of that id left: a job on its landing list
    (each mode's own) and one in its in-flight hash."""
    r = rq.redis
    if mode == "threads":
        r.sadd(registry(keys, worker_id), processor_member(1, "q"))
        r.rpush(processor_key(keys, worker_id, 1, "q"), payload)
    else:
        r.rpush(landing_key(keys, worker_id, "q"), payload)
    record = json.dumps({"queue": "q", "payload": payload.decode(), "claimed_at": 1})
    r.hset(keys.inflight(worker_id), "dead-token", record)


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_worker_under_a_dead_workers_id_runs_what_it_held(
    redis_url: str, namespace: str, mode: str
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    keys = rq.keys
    RUNS.clear()
    try:
        options = WorkerOptions(mode=mode, concurrency=2, interval=0, lease_ttl=5)
        worker = Worker(rq, "q", options)
        payload = json.dumps({"class": "ReusedIdJob", "args": []}).encode()
        _stranded(rq, keys, worker.id, mode, payload)
        worker.work()  # drains its queue, then stops
        assert len(RUNS) == 2  # both ran, not given back unrun at its exit
        assert rq.size("q") == 0
    finally:
        rq.redis.close()
