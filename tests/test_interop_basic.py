"""pyresque beside real Ruby Resque, php-resque and resque-web (tests/interop_support.py):
each side enqueues and the other runs; failures written by each are read by the others."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import HOST, Procs, State, wait_for
from interop_support import Peers, needs_php, needs_ruby, peers_fixture
from pyresque import Resque
from pyresque.protocol.status import Status

# Real peers start in about a second, but a loaded machine stretches every step.
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def peers(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    yield from peers_fixture(redis_url, namespace, tmp_path)


@needs_ruby
def test_ruby_enqueue_runs_on_pyresque(peers: Peers, procs: Procs, state: State) -> None:
    peers.ruby('Resque::Job.create("q", "Archive", 44, "masterbrew")')
    assert state.queue("q") == [{"class": "Archive", "args": [44, "masterbrew"]}]
    procs.worker(peers.ns, "q")
    done = state.wait_event("Archive", "perform", timeout=30)
    assert (done[0]["number"], done[0]["name"]) == (44, "masterbrew")


@needs_ruby
def test_pyresque_enqueue_runs_on_ruby_worker(
    peers: Peers, rq: Resque, redis_url: str, state: State
) -> None:
    rq.enqueue("q", "My_Job", {"a": 1})
    Resque(redis_url, namespace=peers.ns, dialect="ruby").enqueue_to("q", "Archive", 44, "x")
    peers.ruby_worker("q")
    assert state.wait_event("My_Job", "perform", timeout=30)[0]["args"] == [{"a": 1}]
    archive = state.wait_event("Archive", "perform", timeout=30)[0]
    assert (archive["number"], archive["name"], archive["lang"]) == (44, "x", "ruby")
    wait_for(lambda: state.number("stat:processed") == 2, 30, "Ruby to count both jobs")
    assert state.failed() == []


@needs_php
def test_pyresque_enqueue_runs_on_php_worker(
    peers: Peers, rq: Resque, redis_url: str, state: State
) -> None:
    job_id = rq.enqueue("q", "My_Job", {"a": 1}, track_status=True)
    assert job_id is not None
    Resque(redis_url, namespace=peers.ns, dialect="ruby").enqueue_to("q", "My_Job", {"b": 2})
    peers.php_worker("q")
    runs = state.wait_event("My_Job", "perform", count=2, timeout=30)
    assert [(r["args"], r["job_id"], r["lang"]) for r in runs] == [
        ({"a": 1}, job_id, "php"),
        ({"b": 2}, None, "php"),
    ]
    wait_for(lambda: rq.status(job_id) == Status.COMPLETE, 30, "PHP to mark the job complete")
    assert state.failed() == []


@needs_php
def test_php_enqueue_with_status_runs_on_pyresque(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    job_id = peers.php('echo Resque::enqueue("q", "My_Job", array("a" => 1), true);').strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert rq.status(job_id) == Status.WAITING
    procs.worker(peers.ns, "q")
    done = state.wait_event("My_Job", "perform", timeout=30)[0]
    assert (done["args"], done["job_id"]) == ({"a": 1}, job_id)
    wait_for(lambda: rq.status(job_id) == Status.COMPLETE, 30, "the status to be COMPLETE")


@needs_ruby
@needs_php
def test_failures_of_each_side_are_read_by_the_others(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    rq.enqueue("py", "Boom", {"n": 1})
    peers.ruby('Resque::Job.create("rb", "RubyBoom", 2)')
    peers.php('Resque::enqueue("php", "PhpBoom", array("n" => 3));')
    procs.worker(peers.ns, "py")
    peers.ruby_worker("rb")
    peers.php_worker("php")
    state.wait_failed(3, timeout=60)
    # pyresque's failures API reads all three.
    found = {f.queue: (f.class_name, f.exception, f.error) for f in rq.failures.list(0, 10)}
    assert found == {
        "py": ("Boom", "RuntimeError", "boom: {'n': 1}"),
        "rb": ("RubyBoom", "RuntimeError", "ruby boom"),
        "php": ("PhpBoom", "Exception", "php boom"),
    }
    # resque-web shows them all, pyresque's included.
    web = peers.resque_web()
    page = _get(f"{web}/failed")
    for text in ("boom: {", "RubyBoom", "PhpBoom", "ruby boom", "php boom"):
        assert text in page, f"{text!r} not on resque-web's Failed page"


@needs_ruby
def test_resque_web_retry_is_run_by_pyresque(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    rq.enqueue("q", "Boom", {"n": 1})
    worker = procs.worker(peers.ns, "q")
    state.wait_failed(1, timeout=30)
    assert len(state.events("Boom", "perform")) == 1
    web = peers.resque_web()
    _post(f"{web}/failed/requeue/all")
    # The retried job (Ruby's {"class","args"}, no id) runs and fails again.
    state.wait_event("Boom", "perform", count=2, timeout=30)
    records = state.wait_failed(2, timeout=30)
    assert "retried_at" in records[0]
    assert records[1]["payload"] == {"class": "Boom", "args": [{"n": 1}]}
    assert worker.running()


@needs_ruby
def test_resque_web_shows_a_working_pyresque_worker(
    peers: Peers, procs: Procs, rq: Resque, state: State
) -> None:
    rq.enqueue("q", "Block", {"tag": "t", "limit": 60})
    worker = procs.worker(peers.ns, "q")
    state.wait_event("Block", "started", timeout=30)
    web = peers.resque_web()
    worker_id = state.worker_id(worker, "q")
    assert "Block" in _get(f"{web}/working")
    assert f"{HOST}:{worker.pid}" in _get(f"{web}/workers")
    assert "Block" in _get(f"{web}/workers/{urllib.parse.quote(worker_id)}")
    for page in ("overview", "queues", "stats", "failed"):
        _get(f"{web}/{page}")  # 200, not a Ruby exception
    state.release("t")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return str(reply.read().decode("utf-8"))


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200


@needs_ruby
def test_queue_time_reads_back_as_a_number_in_ruby(peers: Peers, rq: Resque, state: State) -> None:
    """Ruby's Oj reads a float of 17 significant digits as a BigDecimal and writes it back as
    a string: pyresque writes queue_time with microseconds, as php-resque does."""
    for n in range(20):  # time.time() often has 17 significant digits
        rq.enqueue("q", "RubyBoom", {"n": n})
    written = {item["args"][0]["n"]: item["queue_time"] for item in state.queue("q")}
    peers.ruby_worker("q")
    records = state.wait_failed(20, timeout=60)
    # Ruby decoded each payload and wrote it back in its failure record.
    assert {r["payload"]["args"][0]["n"]: r["payload"]["queue_time"] for r in records} == written


@needs_ruby
def test_ruby_finds_ruby_dialect_items_by_their_bytes(
    peers: Peers, redis_url: str, state: State
) -> None:
    """Resque::Job.destroy and remove_delayed_in_queue match items by their exact bytes:
    pyresque's Ruby dialect writes what Ruby writes (floats aside, see docs/reliability.md)."""
    ruby_dialect = Resque(redis_url, namespace=peers.ns, dialect="ruby")
    args = (44, "x/ü", 1.5, {"k": [None, True]})
    ruby_dialect.enqueue_to("q", "Archive", *args)
    ruby_dialect.enqueue_in_to(60, "q", "Archive", *args)
    ruby_args = '44, "x/ü", 1.5, {"k" => [nil, true]}'
    found = peers.ruby(
        f'print Resque::Job.destroy("q", "Archive", {ruby_args}), " ",'
        f' Resque.remove_delayed_in_queue("Archive", "q", {ruby_args})'
    )
    assert found == "1 1"
    assert state.qlen("q") == 0
