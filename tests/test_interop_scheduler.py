"""Delayed jobs and retries moved by either scheduler: resque-scheduler (Ruby) and php-resque's
scheduler move pyresque's items, pyresque's scheduler moves theirs, and a retry limit holds
whichever scheduler moves a job's next attempt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e_support import Proc, Procs, State, stays, wait_for
from interop_support import Peers, needs_php, needs_ruby, peers_fixture
from pyresque import Resque
from pyresque.jobs.retry_state import GRACE, RetryState
from pyresque.protocol.payload import Payload

# Real peers start in about a second, but a loaded machine stretches every step.
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def peers(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    yield from peers_fixture(redis_url, namespace, tmp_path)


def _nothing_delayed(state: State) -> bool:
    return not state.r.exists(state.key("delayed_queue_schedule"))


@needs_ruby
def test_resque_scheduler_moves_pyresque_items(
    peers: Peers, procs: Procs, rq: Resque, redis_url: str, state: State
) -> None:
    rq.enqueue_in(1, "q", "Succeed", {"n": 1})
    ruby_dialect = Resque(redis_url, namespace=peers.ns, dialect="ruby")
    ruby_dialect.enqueue_in_to(1, "q", "Archive", 44, "x")
    peers.ruby_scheduler()
    procs.worker(peers.ns, "q")
    assert state.wait_event("Succeed", "perform", timeout=30)[0]["args"] == {"n": 1}
    archive = state.wait_event("Archive", "perform", timeout=30)[0]
    assert (archive["number"], archive["name"]) == (44, "x")
    wait_for(lambda: _nothing_delayed(state), 30, "the schedule to empty")
    assert not list(state.r.scan_iter(state.key("timestamps:*")))


@needs_ruby
@needs_php
def test_pyresque_scheduler_moves_ruby_and_php_items(
    peers: Peers, procs: Procs, state: State
) -> None:
    peers.ruby('Resque.enqueue_at_with_queue("q", Time.now + 1, "Archive", 44, "x")')
    peers.php('ResqueScheduler::enqueueAt(time() + 1, "q", "My_Job", array("a" => 1));')
    procs.cli(["scheduler", "--redis-url", procs.redis_url, "--namespace", peers.ns], peers.ns)
    procs.worker(peers.ns, "q")
    archive = state.wait_event("Archive", "perform", timeout=30)[0]
    assert (archive["number"], archive["name"]) == (44, "x")
    assert state.wait_event("My_Job", "perform", timeout=30)[0]["args"] == {"a": 1}
    wait_for(lambda: _nothing_delayed(state), 30, "the schedule to empty")
    assert not list(state.r.scan_iter(state.key("timestamps:*")))
    assert state.failed() == []


@needs_ruby
def test_retry_limit_holds_when_resque_scheduler_moves_the_retries(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    _retry_limit_holds(peers.ruby_scheduler, procs, rq, state)


@needs_php
def test_retry_limit_holds_when_php_scheduler_moves_the_retries(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    _retry_limit_holds(peers.php_scheduler, procs, rq, state)


def _retry_limit_holds(
    scheduler: Callable[[], Proc], procs: Procs, rq: Resque, state: State
) -> None:
    """AlwaysFails allows 3 attempts: 3 runs and one final failure, with no pyresque
    scheduler, whatever the foreign scheduler drops from the items it moves."""
    rq.enqueue("q", "AlwaysFails", {"n": 1})
    scheduler()
    procs.worker(rq.namespace, "q")
    [record] = state.wait_failed(1, timeout=40)
    assert len(state.events("AlwaysFails", "perform")) == 3
    assert [e["attempt"] for e in record["payload"]["errors"]] == [1, 2, 3]
    started = time.monotonic()
    stays(
        lambda: len(state.events("AlwaysFails", "perform")) == 3 and len(state.failed()) == 1,
        3,
        "no attempt beyond the policy's 3",
    )
    assert time.monotonic() - started >= 3
    assert _nothing_delayed(state)
    assert state.qlen("q") == 0


def test_retry_state_follows_the_job_through_a_foreign_scheduler(rq: Resque) -> None:
    """What a foreign scheduler keeps (class, args; PHP writes {} back as []) finds the
    state; a failed attempt continues from it only when it is further along."""
    state = RetryState(rq.redis, rq.keys)
    retried = Payload("AlwaysFails", [{"n": 1, "e": {}}], "a" * 32, "", 1.0)
    retried.extra.update(attempts=2, errors=[{"attempt": 1}, {"attempt": 2}])
    state.save(retried, due=time.time() + 1, now=time.time())
    assert 0 < int(rq.redis.pttl(state.key(retried))) <= (1 + GRACE) * 1000
    moved_by_php = Payload("AlwaysFails", [{"n": 1, "e": []}], "b" * 32, "", 2.0)
    state.restore(moved_by_php)
    assert (moved_by_php.attempts, len(moved_by_php.extra["errors"])) == (2, 2)
    ahead = Payload("AlwaysFails", [{"n": 1, "e": {}}], extra={"attempts": 4})
    state.restore(ahead)
    assert ahead.attempts == 4
    assert "errors" not in ahead.extra
    other_args = Payload("AlwaysFails", [{"n": 2, "e": {}}])
    state.restore(other_args)
    assert other_args.attempts == 0
    state.forget(moved_by_php)  # the job ended
    assert not rq.redis.exists(state.key(retried))
