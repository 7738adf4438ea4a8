"""Pruning across languages: Ruby and PHP workers prune a dead pyresque worker, pyresque
prunes dead Ruby and PHP workers; a job is never lost, and never both failed and re-run."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_gen as gen
from e2e_support import HOST, Proc, Procs, State, dying_worker, stays, wait_for
from interop_support import Peers, needs_php, needs_ruby, peers_fixture
from pyresque import Resque
from pyresque.jobs.unique import Unique
from pyresque.protocol.claim import Claim
from pyresque.protocol.running import mark_running
from pyresque.worker import peer_prune
from pyresque.worker.recovery import Recovery

# Real peers start in about a second, but a loaded machine stretches every step.
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def peers(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    yield from peers_fixture(redis_url, namespace, tmp_path)


def _kill(proc: Proc) -> None:
    """SIGKILL a worker and everything it started (its job's process too)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait()


def _shown(state: State, worker_id: str) -> None:
    """Wait for ``worker:<id>``, what Ruby's prune fails: a worker writes it a few ms
    after a job starts, off the job's own path (protocol/running.py)."""
    wait_for(lambda: state.exists(f"worker:{worker_id}"), 30, "worker:<id> to show a job")


def _dead_pyresque_worker_mid_job(procs: Procs, rq: Resque, state: State) -> str:
    """A pyresque worker killed while it runs a Block job; returns its id."""
    rq.enqueue("q", "Block", {"tag": "t", "limit": 60})
    worker = procs.worker(rq.namespace, "q")
    state.wait_event("Block", "started", timeout=30)
    worker_id = state.worker_id(worker, "q")
    _shown(state, worker_id)
    _kill(worker)
    return worker_id


def _may_prune_now(state: State) -> None:
    """Every worker start, of any language, takes Resque's pruning lock for 60 s and prunes
    only if it got it: drop it, as if the last start were a minute ago."""
    state.r.delete(state.key("pruning_dead_workers_in_progress"))


def _recovered(state: State, worker_id: str) -> bool:
    """pyresque's recovery is done with a dead worker: its in-flight jobs and lease gone."""
    return not state.exists(f"pyresque:inflight:{worker_id}") and (
        state.r.zscore(state.key("pyresque:leases"), worker_id) is None
    )


def _ruby_prunes(peers: Peers, state: State, dead: str, queues: str) -> dict[str, Any]:
    """A Ruby worker on ``queues`` starts, prunes ``dead`` and is stopped; returns the
    failure record it wrote for the dead worker's job."""
    _may_prune_now(state)
    ruby = peers.ruby_worker(queues)
    [record] = state.wait_failed(1, timeout=30)
    assert record["worker"] == dead
    wait_for(lambda: dead not in state.workers(), 30, "Ruby to unregister the dead worker")
    peers.stop(ruby)
    return record


def _not_run_again(procs: Procs, rq: Resque, state: State, dead: str) -> None:
    """A pyresque worker recovers ``dead``; the Block job Ruby failed does not run again."""
    procs.worker(rq.namespace, "q")
    wait_for(lambda: _recovered(state, dead), 60, "pyresque to recover the dead worker")
    stays(
        lambda: len(state.events("Block", "started")) == 1 and state.qlen("q") == 0,
        3,
        "the job failed by Ruby is not run again",
    )
    assert len(state.failed()) == 1


@needs_ruby
def test_ruby_prunes_a_dead_pyresque_worker_and_the_job_is_not_run_again(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    dead = _dead_pyresque_worker_mid_job(procs, rq, state)
    record = _ruby_prunes(peers, state, dead, "*")
    assert (record["exception"], record["payload"]["class"]) == ("Resque::DirtyExit", "Block")
    # Ruby's pruning lock is young: recovery waits until it has aged (peer_fence.lua).
    _not_run_again(procs, rq, state, dead)


@needs_ruby
def test_ruby_prunes_by_heartbeat_age_and_the_job_is_not_run_again(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    """Ruby's other rule, on any host: a heartbeat older than 300 s (here: made so)."""
    dead = _dead_pyresque_worker_mid_job(procs, rq, state)
    state.r.hset(state.key("workers:heartbeat"), dead, "2020-01-01T00:00:00+00:00")
    # Not "*": only the heartbeat rule applies.
    record = _ruby_prunes(peers, state, dead, "other")
    assert record["exception"] == "Resque::PruneDeadWorkerDirtyExit"
    _may_prune_now(state)  # Ruby is done: no need to wait for its lock to age
    _not_run_again(procs, rq, state, dead)


@needs_ruby
def test_ruby_prune_fails_one_job_and_the_others_in_flight_are_requeued(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    """In threads mode a worker runs several jobs; Ruby fails the one in worker:<id>."""
    for tag in ("a", "b"):
        rq.enqueue("q", "Block", {"tag": tag, "limit": 60})
    worker = procs.worker(rq.namespace, "q", "--mode", "threads", "--concurrency", "2")
    state.wait_event("Block", "started", count=2, timeout=30)
    dead = state.worker_id(worker, "q")
    _shown(state, dead)
    _kill(worker)
    failed_tag = _ruby_prunes(peers, state, dead, "*")["payload"]["args"][0]["tag"]
    _may_prune_now(state)  # Ruby is done: no need to wait for its lock to age
    procs.worker(rq.namespace, "q")
    [again] = state.wait_event("Block", "started", count=3, timeout=60)[2:]
    assert again["tag"] != failed_tag
    state.release(again["tag"])
    state.wait_event("Block", "finished", timeout=30)
    stays(lambda: len(state.events("Block", "started")) == 3, 2, "no other run")
    assert len(state.failed()) == 1


@needs_php
def test_php_prunes_a_dead_pyresque_worker_and_nothing_is_lost(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    dead = _dead_pyresque_worker_mid_job(procs, rq, state)
    php = peers.php_worker("other")  # php-resque takes no lock
    # php-resque unregisters it without a failure record: the job would be lost.
    wait_for(lambda: dead not in state.workers(), 30, "PHP to unregister the dead worker")
    peers.stop(php)
    procs.worker(rq.namespace, "q")
    state.wait_event("Block", "started", count=2, timeout=60)
    state.release("t")
    state.wait_event("Block", "finished", timeout=30)
    assert state.failed() == []


@needs_ruby
def test_a_live_pyresque_worker_survives_a_ruby_worker_start(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    rq.enqueue("q", "Block", {"tag": "t", "limit": 60})
    worker = procs.worker(rq.namespace, "q")
    state.wait_event("Block", "started", timeout=30)
    _may_prune_now(state)
    ruby = peers.ruby_worker("*")
    wait_for(lambda: f"{HOST}:{ruby.pid}:*" in state.workers(), 30, "Ruby to prune and register")
    state.release("t")
    state.wait_event("Block", "finished", timeout=30)
    assert state.failed() == []
    assert state.worker_id(worker, "q") in state.workers()


@needs_ruby
def test_pyresque_prunes_a_dead_ruby_worker(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    peers.ruby('Resque::Job.create("rq", "RubyBlock", "t")')
    ruby = peers.ruby_worker("rq")
    state.wait_event("RubyBlock", "started", timeout=30)
    _kill(ruby)
    _may_prune_now(state)
    procs.worker(rq.namespace, "q")
    [record] = state.wait_failed(1, timeout=30)
    dead = f"{HOST}:{ruby.pid}:rq"
    assert (record["exception"], record["error"]) == (
        "Resque::DirtyExit",
        "Job still being processed",
    )
    assert (record["worker"], record["payload"]) == (dead, {"class": "RubyBlock", "args": ["t"]})
    wait_for(lambda: state.worker_keys_gone(dead), 30, "the Ruby worker's keys to go")


@needs_php
def test_pyresque_prunes_a_dead_php_worker(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    peers.php('Resque::enqueue("pq", "PhpBlock", array("tag" => "t"));')
    php = peers.php_worker("pq")
    state.wait_event("PhpBlock", "started", timeout=30)
    _kill(php)
    procs.worker(rq.namespace, "q")
    [record] = state.wait_failed(1, timeout=30)
    dead = f"{HOST}:{php.pid}:pq"
    assert (record["exception"], record["worker"]) == ("Resque::DirtyExit", dead)
    assert record["payload"]["class"] == "PhpBlock"
    wait_for(lambda: state.worker_keys_gone(dead), 30, "the PHP worker's keys to go")


def test_recovery_waits_while_a_ruby_worker_may_be_pruning(rq: Resque, state: State) -> None:
    """Ruby takes the pruning lock, then fails the job it finds in worker:<id>: while such a
    lock is young, recovery leaves the dead worker alone; after, it requeues the job (and a
    prune starting then finds no job to fail)."""
    rq.enqueue("q", "Succeed", {"n": 1})
    dead = "deadhost:1:q"
    [claim] = cast("list[Claim]", dying_worker(rq, dead, lease_ms=300).claim(["a" * 32]))
    assert mark_running(rq.redis, rq.keys, dead, claim, None)  # it ran for a while
    assert state.exists(f"worker:{dead}")
    recovery = Recovery(rq.redis, rq.keys, rq.registry, recoverer="vm:2:q")
    lock = state.key("pruning_dead_workers_in_progress")
    state.r.set(lock, f"{HOST}:99:*", ex=60)  # a Ruby worker started just now
    time.sleep(0.4)  # the lease has expired
    assert recovery.recover_worker(dead) == 0
    assert rq.size("q") == 0
    assert state.exists(f"worker:{dead}")
    state.r.set(lock, "pyresque vm:3:q", ex=60)  # pyresque's own lock does not hold it up
    assert recovery.recover_worker(dead) == 1
    assert rq.size("q") == 1
    assert not state.exists(f"worker:{dead}")


def test_a_job_a_ruby_prune_failed_is_dropped_and_frees_its_unique_lock(
    rq: Resque, state: State
) -> None:
    """The job leaves for good (Ruby failed it): its unique lock goes with it."""
    rq.enqueue("q", "Succeed", {"n": 1}, unique=Unique(ttl=600))
    [lock] = state.r.scan_iter(state.key("pyresque:unique:*"))
    dead = "deadhost:1:q"
    [claim] = cast("list[Claim]", dying_worker(rq, dead).claim(["a" * 32]))
    # What Ruby's prune leaves: a DirtyExit record of the job, the worker unregistered.
    shown = json.loads(claim.raw)
    state.r.rpush(
        state.key("failed"),
        json.dumps(
            {
                "payload": shown,
                "worker": dead,
                "exception": "Resque::DirtyExit",
                "error": "Job still being processed",
                "queue": "q",
            }
        ),
    )
    state.r.srem(state.key("workers"), dead)
    time.sleep(0.6)  # the lease has expired
    assert Recovery(rq.redis, rq.keys, rq.registry).recover_worker(dead) == 1
    assert rq.size("q") == 0
    assert len(state.failed()) == 1
    assert not state.r.exists(lock)
    assert not state.exists(f"pyresque:inflight:{dead}")


DEAD = "deadhost:1:q"
#: Failure records as anyone may have written them, a peer's prune records among them.
PEER_RECORDS = st.one_of(
    st.fixed_dictionaries(
        {
            "worker": st.sampled_from([DEAD]) | gen.TEXT,
            "exception": st.sampled_from(peer_prune.PEER_EXCEPTIONS) | gen.TEXT,
            "payload": gen.JSON | st.fixed_dictionaries({"class": gen.JSON, "args": gen.JSON}),
        }
    ).map(lambda record: json.dumps(record).encode()),
    gen.JSON.map(lambda value: json.dumps(value).encode()),
    gen.GARBAGE,
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(found=st.lists(gen.records(), max_size=4), failed=st.lists(PEER_RECORDS, max_size=6))
def test_any_failure_or_inflight_record_is_read_without_error(
    rq: Resque, found: list[gen.Record], failed: list[bytes]
) -> None:
    """Looking for a peer's prune records reads whatever ``failed`` and the in-flight
    hash hold: it never raises, and names only tokens it was given."""
    rq.redis.delete(rq.keys.failed)
    if failed:
        rq.redis.rpush(rq.keys.failed, *failed)
    entries = {f"t{i}".encode(): r.render(gen.marker()) for i, r in enumerate(found)}
    assert peer_prune.failed_by_peer(rq.redis, rq.keys, DEAD, entries) <= set(entries)
