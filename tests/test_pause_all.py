"""Ruby's ``pause-all-workers`` flag is read by each worker's heartbeat (heartbeat.lua),
not by every claim: a worker takes no job while its last beat saw it set, and on
Redis Cluster it is read in the home slot, where it is set and where the dashboard
reads it (a claim used to read it in the queue's slot, where nothing sets it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from e2e_support import wait_for
from pyresque import Resque
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker
from test_cluster import Record, queues_on_each_master, ran, rq  # noqa: F401  (rq: fixture)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_on_cluster_pause_all_workers_in_the_home_slot_holds_every_queue(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    queues = queues_on_each_master(rq, cluster)  # a queue on each master
    assert rq.keys.pause_all == rq.keys.home.pause_all
    rq.redis.set(rq.keys.pause_all, "true")
    log = tmp_path / "ran"
    for queue in queues:
        rq.enqueue_to(queue, Record, str(log), queue)
    worker = Worker(rq, ",".join(queues), WorkerOptions(mode=mode, interval=0.2))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.heartbeat.paused_all, 60, "the heartbeat to read the flag")
        time.sleep(1.5)  # several claim cycles of the worker: none takes a job
        assert ran(str(log)) == []
        assert all(rq.redis.llen(rq.keys.queue(q)) == 1 for q in queues)
        rq.redis.delete(rq.keys.pause_all)
        wait_for(lambda: sorted(ran(str(log))) == sorted(queues), 60, "the jobs to run")
    finally:
        worker.shutdown()
        thread.join(60)
    assert not thread.is_alive()
