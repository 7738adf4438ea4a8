"""A worker that stops is not registered again by a heartbeat still in flight.

A beat writes the worker's registration (its lease, ``workers``, Ruby's
``workers:heartbeat``: protocol/beat.py) on the lease client, whose calls end within
half the lease; the worker unregisters once its heartbeat stopped. A beat whose write
was slow and landed after that left a dead worker listed (resque-web, ``pyresque
workers``) until another worker reaped it.
"""

from __future__ import annotations

import signal

from delay_proxy import DelayProxy
from e2e_support import JOBS, Procs, State, wait_for
from pyresque import Resque
from pyresque.middleware.history import HistoryBuffer
from pyresque.protocol import scripts
from pyresque.protocol.connection import lease_client
from pyresque.worker.foreign_prune import worker_keys
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.recovery import Recovery

#: The worker's lease: its lease client then waits 10 s for a reply (connection.py),
#: longer than the proxy's delay, so that a slow beat's write succeeds, late.
LEASE = 80.0
DELAY = 7.0  # longer than the 5 s a stopping worker waited for its heartbeat thread


def _registered(state: State, rq: Resque, worker_id: str) -> list[str]:
    """What is left of the worker's registration (empty once it unregistered)."""
    left = []
    if worker_id in state.workers():
        left.append("workers")
    if rq.redis.zscore(rq.keys.leases, worker_id) is not None:
        left.append("lease")
    if rq.redis.hexists(rq.keys.heartbeats, worker_id):
        left.append("workers:heartbeat")
    for key in (rq.keys.worker(worker_id), rq.keys.worker_started(worker_id)):
        if rq.redis.exists(key):
            left.append(key)
    return left


def test_a_beat_slow_to_land_does_not_register_a_stopped_worker_again(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    proxy = DelayProxy(port, DELAY)
    try:
        args = ["worker", "--app", str(JOBS), "--redis-url", proxy.url]
        args += ["--namespace", namespace, "--queue", "default", "--lease-ttl", str(LEASE)]
        worker = procs.cli(args, namespace)
        worker_id = state.wait_registered(state.worker_id(worker))
        worker.wait_log(f"worker {worker_id} started")
        # The next beat's write (its HSET of Ruby's heartbeat) is slow to reach Redis.
        proxy.arm(b"HSET", rq.keys.heartbeats.encode())
        wait_for(proxy.held.is_set, LEASE, "a beat's write to be held")
        worker.send(signal.SIGTERM)
        assert worker.wait_exit(LEASE) == 0, worker.log()
        proxy.disarm()
        wait_for(proxy.drained, 60, "the proxy to deliver what the worker sent")
        assert _registered(state, rq, worker_id) == [], worker.log()
    finally:
        proxy.close()


def test_a_beat_after_stop_writes_nothing(rq: Resque) -> None:
    """A beat that begins once the heartbeat stopped (the thread's, or one that read the
    worker unregistered and would register it again) leaves it unregistered."""
    worker_id = "host:1:default"
    client = lease_client(rq.redis, 5.0)
    recovery = Recovery(client, rq.keys, rq.registry, 3, worker_id)
    heartbeat = Heartbeat(client, rq.keys, worker_id, 5000, "now", recovery, print, HistoryBuffer())
    try:
        heartbeat.beat()
        assert rq.redis.sismember(rq.keys.workers, worker_id) == 1
        heartbeat.stop()
        scripts.run(rq.redis, "reap", worker_keys(rq.keys, worker_id), [worker_id, "1", "", ""])
        assert heartbeat.beat() == []
        assert rq.redis.sismember(rq.keys.workers, worker_id) == 0
        assert rq.redis.zscore(rq.keys.leases, worker_id) is None
        assert not rq.redis.hexists(rq.keys.heartbeats, worker_id)
        assert not rq.redis.exists(rq.keys.worker_started(worker_id))
    finally:
        client.close()
