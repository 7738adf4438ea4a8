"""``pyresque failed trim`` on a real Redis Cluster (3 masters, a replica each): the
retention rule over the failed lists of every slot as one (client/admin/failed_trim.py)."""

from __future__ import annotations

import json
import uuid
from typing import cast

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import Resque
from pyresque.cli.main import main as cli
from pyresque.client.admin import failed_trim
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.protocol.connection import raw
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from test_cluster import queues_on_each_master, rq  # noqa: F401  (rq: a fixture)

NOW = 1_900_000_000.0


def dated(failed_at: object, queue: str = "q") -> bytes:
    record = json.loads(failure_record({"class": "C", "args": []}, "E", "e", [], "w", queue))
    return json.dumps({**record, "failed_at": failed_at}).encode()


def lists(resque: Resque, places: list[Keys]) -> list[list[bytes]]:
    found = [resque.redis.lrange(at.failed, 0, -1) for at in places]
    return [[raw(item) for item in cast("list[bytes]", items)] for items in found]


def test_trim_keeps_the_newest_records_of_every_slot_and_drops_the_old(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queues = queues_on_each_master(rq, cluster)
    places = [rq.keys.home, *(rq.keys.for_queue(q) for q in queues)]
    rq.redis.sadd(rq.keys.queues, *queues)
    # Failure times interleaved over the lists: list i holds times i, i + 4, i + 8, ...
    for i, at in enumerate(places):
        rq.redis.rpush(at.failed, *(dated(str(NOW - 100 + t)) for t in range(i, 40, 4)))
    assert rq.failures.count() == 40
    dropped = failed_trim.trim(rq, keep=30, now=NOW)
    assert dropped == 10
    left = lists(rq, places)
    assert sorted(json.loads(r)["failed_at"] for items in left for r in items) == [
        str(NOW - 100 + t) for t in range(10, 40)
    ]
    # The age rule: each list from its head, while its records are old enough.
    assert failed_trim.trim(rq, older_than=100 - 19.5, now=NOW) == 10
    assert rq.failures.count() == 20
    args = ["failed", "trim", "--keep", "3", "--redis-url", cluster.url()]
    out = CliRunner().invoke(cli, [*args, "--namespace", rq.namespace])
    assert out.output == "trimmed: 17\n", out.output
    kept = [json.loads(r)["failed_at"] for items in lists(rq, places) for r in items]
    assert sorted(kept) == [str(NOW - 100 + t) for t in range(37, 40)]


_record = st.one_of(
    st.integers(0, 50).map(lambda t: dated(NOW + t)),
    st.binary(max_size=20),  # not a record: its time cannot be read
    st.sampled_from([dated(None), dated("some day"), dated([1]), b"{}"]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    contents=st.lists(st.lists(_record, max_size=8), min_size=1, max_size=4),
    keep=st.integers(0, 20),
    chunk=st.integers(1, 4),
)
def test_whatever_the_lists_hold_trim_keeps_the_newest_keep_from_the_heads(
    cluster: ClusterGroup,  # noqa: F811
    contents: list[list[bytes]],
    keep: int,
    chunk: int,
) -> None:
    resque = Resque(cluster.url(), namespace=f"h{uuid.uuid4().hex[:8]}")
    places = [resque.keys.home, *(resque.keys.for_queue(f"q{i}") for i in range(len(contents)))]
    resque.redis.sadd(resque.keys.queues, *(f"q{i}" for i in range(len(contents))))
    for at, items in zip(places, contents, strict=False):
        if items:
            resque.redis.rpush(at.failed, *items)
    failed_trim._TRIM_CHUNK, kept_chunk = chunk, failed_trim._TRIM_CHUNK
    try:
        dropped = failed_trim.trim(resque, keep=keep)
    finally:
        failed_trim._TRIM_CHUNK = kept_chunk
    everything = sum(len(items) for items in contents)
    assert dropped == max(0, everything - keep)
    for items, left in zip(contents, lists(resque, places), strict=False):
        assert left == items[len(items) - len(left) :]  # each list loses its head only
    resque.redis.close()
