"""Workflow payloads (docs/workflows.md) on real Ruby Resque and php-resque workers: the
extra "workflow" field is ignored and the job runs; only a pyresque worker's finish
releases what waits for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import State
from interop_support import Peers, needs_php, needs_ruby, peers_fixture
from pyresque import Resque, chain, group, step

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def peers(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    yield from peers_fixture(redis_url, namespace, tmp_path)


@needs_ruby
def test_ruby_runs_the_jobs_of_a_group(peers: Peers, rq: Resque, state: State) -> None:
    flow = rq.enqueue_workflow(
        group(step("q", "My_Job", {"a": 1}), step("q", "Archive", 44, "x"), name="g")
    )
    assert all(item["workflow"] is True for item in state.queue("q"))
    peers.ruby_worker("q")
    assert state.wait_event("My_Job", "perform", timeout=30)[0]["args"] == [{"a": 1}]
    archive = state.wait_event("Archive", "perform", timeout=30)[0]
    assert (archive["number"], archive["name"], archive["lang"]) == (44, "x", "ruby")
    assert state.failed() == []
    assert flow.batch
    info = rq.batch(flow.batch)
    assert info
    assert info.pending == 2  # a Ruby worker's finish does not count them


@needs_php
def test_php_runs_the_first_step_of_a_chain(peers: Peers, rq: Resque, state: State) -> None:
    flow = rq.enqueue_workflow(chain(step("q", "My_Job", {"a": 1}), step("q", "My_Job", {"b": 2})))
    peers.php_worker("q")
    run = state.wait_event("My_Job", "perform", timeout=30)[0]
    assert (run["args"], run["job_id"], run["lang"]) == ({"a": 1}, flow.jobs[0], "php")
    assert state.failed() == []
    assert rq.workflow_state(flow.jobs[1]) == "waiting"  # released only by pyresque
