"""Forgetting idle queues (opt-in): only names whose queue stayed empty and unwatched,
atomically against enqueues, and put back when a two-command producer raced it."""

from __future__ import annotations

import json
import random
import threading

import redis
from click.testing import CliRunner

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from pyresque.cli.main import main as cli


def members(rq: Resque) -> set[str]:
    return {m.decode() for m in rq.redis.smembers(rq.keys.queues)}  # type: ignore[union-attr]


def ruby_push(client: redis.Redis, rq: Resque, queue: str, n: int) -> None:
    """Resque.push: SADD and RPUSH, pipelined but not atomic."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd(rq.keys.queues, queue)
    pipe.rpush(rq.keys.queue(queue), json.dumps({"class": "Succeed", "args": [{"n": n}]}))
    pipe.execute()


def test_only_queues_empty_and_unwatched_at_every_call_are_forgotten(
    rq: Resque, redis_client: redis.Redis
) -> None:
    for name in ("empty", "full", "watched", "odd"):
        redis_client.sadd(rq.keys.queues, name)
    rq.enqueue("full", "Job", {})
    rq.redis.lpop(rq.keys.queue("empty"))
    redis_client.set(rq.keys.queue("odd"), "not a list")  # another client's key: kept
    redis_client.sadd(rq.keys.workers, "host:1:watched,tenant-*")
    assert rq.forget_idle_queues(0) == {"forgotten": [], "restored": []}  # marked only
    assert rq.forget_idle_queues(3600)["forgotten"] == []  # not idle long enough
    assert rq.forget_idle_queues(0)["forgotten"] == ["empty"]
    assert members(rq) == {"full", "watched", "odd"}
    assert redis_client.zcard(rq.keys.queues_idle) == 0
    rq.enqueue("empty", "Job", {})  # an enqueue puts the name back
    assert "empty" in members(rq)


def test_a_job_pushed_while_its_name_was_forgotten_brings_it_back(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    redis_client.sadd(rq.keys.queues, "tenant")
    rq.forget_idle_queues(0)
    assert rq.forget_idle_queues(0)["forgotten"] == ["tenant"]
    # Ruby's SADD landed before the forgetting, its RPUSH after: a job, no name.
    redis_client.rpush(rq.keys.queue("tenant"), json.dumps({"class": "Succeed", "args": []}))
    redis_client.delete(rq.keys.queues_changed)
    args = ["forget-idle-queues", "--idle", "0", "--redis-url", redis_url, "--namespace", namespace]
    out = CliRunner().invoke(cli, args).output
    assert "restored tenant" in out
    assert "tenant" in members(rq)
    assert redis_client.llen(rq.keys.queues_changed) == 1  # glob workers look again


def test_forgetting_while_producers_and_glob_workers_run_loses_no_job(
    procs: Procs, state: State, rq: Resque, namespace: str, redis_client: redis.Redis
) -> None:
    """Producers (pyresque's enqueue and Ruby's two commands) on 20 queues, workers on
    ``*``, and a loop forgetting every idle queue at once: every job runs."""
    for _ in range(2):
        procs.worker(namespace, "*")
    names = [f"tenant-{i}" for i in range(20)]
    total = 400
    forgotten: list[str] = []
    stop = threading.Event()

    def forget() -> None:
        while not stop.is_set():
            forgotten.extend(rq.forget_idle_queues(0)["forgotten"])

    forgetter = threading.Thread(target=forget, daemon=True)
    forgetter.start()
    try:
        rng = random.Random(7)
        for n in range(total):
            queue = rng.choice(names)
            if n % 2:
                ruby_push(redis_client, rq, queue, n)
            else:
                rq.enqueue(queue, "Succeed", {"n": n})
        state.wait_number("stat:processed", total, timeout=120)
    finally:
        stop.set()
        forgetter.join(30)
    assert forgotten  # names were forgotten while jobs came and went
    wait_for(lambda: state.number("stat:processed") == total, 5, "no job to run twice")
    assert all(rq.size(name) == 0 for name in names)
