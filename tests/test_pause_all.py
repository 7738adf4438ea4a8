"""Ruby's ``pause-all-workers`` flag is read by each worker's heartbeat (heartbeat.lua),
not by every claim: a worker takes no job while its last beat saw it set, and on
Redis Cluster it is read in the home slot, where it is set and where the dashboard
reads it (a claim used to read it in the queue's slot, where nothing sets it)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import Job, Resque
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker


class PauseRecord(Job):
    """Appends ``tag`` to the file ``path`` (one write: lines never mix)."""

    @staticmethod
    def perform(path: str, tag: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{tag}\n".encode())
        finally:
            os.close(fd)


def _ran(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def rq(cluster: ClusterGroup, cluster_namespace: str) -> Iterator[Resque]:  # noqa: F811
    resque = Resque(cluster.url(), namespace=cluster_namespace)
    yield resque
    resque.redis.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_on_cluster_pause_all_workers_in_the_home_slot_holds_every_queue(
    rq: Resque,
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    by_master: dict[int, str] = {}  # a queue on each master
    for i in range(1000):
        node = cluster.master_of_slot(key_slot(rq.keys.queue(f"q{i}").encode()))
        by_master.setdefault(node.port, f"q{i}")
    queues = list(by_master.values())
    assert len(queues) == len(cluster.masters())
    assert rq.keys.pause_all == rq.keys.home.pause_all
    rq.redis.set(rq.keys.pause_all, "true")
    log = tmp_path / "ran"
    for queue in queues:
        rq.enqueue_to(queue, PauseRecord, str(log), queue)
    worker = Worker(rq, ",".join(queues), WorkerOptions(mode=mode, interval=0.2))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        _until(lambda: worker.heartbeat.paused_all, 60, "the heartbeat to read the flag")
        time.sleep(1.5)  # several claim cycles of the worker: none takes a job
        assert _ran(log) == []
        assert all(rq.redis.llen(rq.keys.queue(q)) == 1 for q in queues)
        rq.redis.delete(rq.keys.pause_all)
        _until(lambda: sorted(_ran(log)) == sorted(queues), 60, "the jobs to run")
    finally:
        worker.shutdown()
        thread.join(60)
    assert not thread.is_alive()
