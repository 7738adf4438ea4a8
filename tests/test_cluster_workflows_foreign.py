"""On a real Redis Cluster: a workflow job released onto a queue whose key holds another
type (the user's key). wf_push.lua's push failed in the queue's slot after the home slot
had released it: the worker's follow-up raised WRONGTYPE, the job stayed queued in its
workflow and its dependents waiting, and every drain raised on it again. Now it goes to
that slot's ``failed`` (pyresque.ForeignQueue) and is settled as failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from cluster_workflow_jobs import CStep
from pyresque import Resque, Status
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.testing import run_jobs
from pyresque.protocol import scripts
from pyresque.protocol.workflow import drain_outbox, workflow_keys
from test_cluster import queues_on_each_master, ran, rq  # noqa: F401  (rq: a fixture)


@pytest.fixture
def queues(rq: Resque, cluster: ClusterGroup) -> list[str]:  # noqa: F811
    names = queues_on_each_master(rq, cluster)
    assert len({key_slot(rq.keys.queue(q).encode()) for q in names}) == 3
    return names


def test_a_dependent_on_a_queue_of_another_type_fails_in_its_slot(
    rq: Resque,  # noqa: F811
    queues: list[str],
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "runs.log")
    q0, q1, q2 = queues
    parent = rq.enqueue_to(q0, CStep, log, "parent", dependable=True)
    assert parent
    lost = rq.enqueue_to(q1, CStep, log, "lost", depends_on=[parent], track_status=True)
    assert lost
    healthy = rq.enqueue_to(q2, CStep, log, "healthy", depends_on=[parent])
    after = rq.enqueue_to(q2, CStep, log, "after", depends_on=[lost])
    assert healthy
    assert after
    rq.redis.set(rq.keys.queue(q1), "hello")
    run_jobs(rq, [q0, q2])
    assert ran(log) == ["parent", "healthy"]
    states = [rq.workflow_state(j) for j in (parent, lost, healthy, after)]
    assert states == ["ok", "failed", "ok", "cancelled"]
    shard = rq.keys.for_queue(q1)
    [record] = [json.loads(f) for f in cast("list[bytes]", rq.redis.lrange(shard.failed, 0, -1))]
    assert record["exception"] == "pyresque.ForeignQueue"
    assert f"{rq.keys.queue(q1)} holds a string" in record["error"]
    assert record["payload"]["args"][1] == "lost"
    assert lost.status() == Status.FAILED
    assert rq.redis.get(rq.keys.queue(q1)) == b"hello"
    assert rq.redis.zcard(rq.keys.wf_outbox) == 0


def test_a_foreign_push_left_by_a_killed_caller_is_failed_once_by_a_drain(
    rq: Resque,  # noqa: F811
    queues: list[str],
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "runs.log")
    q0, q1, _ = queues
    parent = rq.enqueue_to(q0, CStep, log, "parent", dependable=True)
    assert parent
    lost = rq.enqueue_to(q1, CStep, log, "lost", depends_on=[parent])
    assert lost
    rq.redis.hset(rq.keys.queue(q1), "mine", "hello")
    flow = workflow_keys(rq.keys.home, ())
    # The end applied in the home slot; the caller dies before the push.
    assert scripts.run(rq.redis, "wf_report", flow, [parent, "ok", '"x"']) == [1, lost.encode()]
    assert drain_outbox(rq.redis, rq.keys, older_than_ms=0) == 1
    assert drain_outbox(rq.redis, rq.keys, older_than_ms=0) == 0
    assert rq.workflow_state(lost) == "failed"
    assert rq.redis.llen(rq.keys.for_queue(q1).failed) == 1
