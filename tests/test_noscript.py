"""A flushed script cache (a failover to a fresh replica, a restart, a managed service's
maintenance) costs nothing: every script call is EVALSHA and loads the script again on
NOSCRIPT. The cache is flushed every 10 ms while a producer, a worker (claim, finish,
heartbeat) and the scheduler (delayed jobs) run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import JOBS, Procs, procs_fixture, wait_for
from pyresque import Resque
from pyresque.client.calls import Enqueued
from pyresque.dev.server import RedisServer
from secure_support import admin, new_namespace


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:  # its script cache is flushed: no other test shares it
        yield private


@pytest.fixture
def procs(server: RedisServer, tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(server.url, tmp_path)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_workers_and_scheduler_carry_on_when_scripts_are_flushed(
    server: RedisServer, procs: Procs, mode: str
) -> None:
    ns, root = new_namespace(), admin(server.url)
    rq = Resque(server.url, namespace=ns)
    worker = procs.worker(ns, "default", "--mode", mode)
    scheduler = procs.cli(["scheduler", "--app", str(JOBS), "--redis-url", server.url,
                           "--namespace", ns, "--interval", "0.1"], ns)  # fmt: skip
    jobs = 0
    for i in range(20):
        root.script_flush()
        rq.enqueue("default", "Succeed", {"i": i})
        rq.enqueue_in(0.3, "default", "Succeed", {"later": i})
        root.script_flush()
        rq.enqueue_many([Enqueued("default", "Succeed", [{"many": i}])] * 3)
        jobs += 5

    def flushed_and_done() -> bool:
        root.script_flush()
        return rq.stat("processed") >= jobs

    wait_for(flushed_and_done, 120, f"{jobs} jobs processed while the cache was flushed")
    assert rq.stat("processed") == jobs
    assert rq.failures.count() == 0
    assert rq.size("default") == 0
    assert rq.delayed_count() == 0
    for proc in (worker, scheduler):
        assert "Traceback" not in proc.log()
        assert "NOSCRIPT" not in proc.log()
