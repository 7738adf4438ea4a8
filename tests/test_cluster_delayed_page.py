"""The dashboard's Delayed page on a real Redis Cluster (3 masters, a replica each):
the schedules of every queue's slot paged as one (protocol/delayed_pages.py), with
its actions acting in the slot of the job they name."""

from __future__ import annotations

import math
import uuid
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import Enqueued, Resque, Status
from pyresque.client.admin.delayed import delayed_page
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.protocol.connection import raw
from pyresque.protocol.delayed_pages import Entry, read_page
from pyresque.protocol.keys import Keys
from test_cluster import Record, queues_on_each_master, rq  # noqa: F401  (rq: a fixture)

T0 = 1_900_000_000


def test_the_delayed_page_pages_every_queues_schedule_as_one_and_acts_in_its_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    from starlette.testclient import TestClient

    from pyresque.web.app import OPEN, create_app

    queues = queues_on_each_master(rq, cluster)
    expected = []
    for i in range(7):  # due times shared by queues on different masters, and not
        for queue in queues[: 1 + i % 3]:
            rq.enqueue_at_to(T0 + 10 * (i // 2), queue, Record, "p", f"{queue}-{i}")
            expected.append((T0 + 10 * (i // 2), queue))
    expected = sorted(set(expected))
    seen = []
    for start in range(0, len(expected) + 2, 3):
        page = delayed_page(rq, start, per_page=3)
        assert page["problems"] == []
        assert page["total_timestamps"] == len(expected)
        seen += [(t["at"], t["queue"]) for t in page["timestamps"]]
    assert seen == expected

    app = create_app(cluster.url(), namespace=rq.namespace, auth=OPEN)
    with TestClient(app, "http://localhost") as client:
        html = client.get("/delayed").text
        assert f'name="queue" value="{queues[0]}"' in html
        data = client.get("/api/delayed", params={"start": 1}).json()
        first = data["timestamps"][0]
        assert (first["at"], first["queue"]) == expected[1]
        token = client.get("/api/csrf").json()["csrf_token"]

        def act(action: str, **form: Any) -> Any:
            return client.post(f"/api/actions/{action}", json=form, headers={"X-CSRF-Token": token})

        job = first["jobs"][0]
        now = act("enqueue-delayed", at=first["at"], digest=job["digest"], queue=first["queue"])
        assert now.json()["count"] == 1, now.text
        assert rq.size(first["queue"]) == 1
        # Without the queue the item cannot be found on a cluster: refused, nothing done.
        other = data["timestamps"][1]
        fields = {"at": other["at"], "digest": other["jobs"][0]["digest"]}
        assert act("remove-delayed", **fields).status_code == 400
        gone = act("remove-delayed", **fields, queue=other["queue"])
        assert gone.json()["count"] == 1, gone.text
        assert act("remove-delayed", **fields, queue=other["queue"]).status_code == 409
    assert rq.delayed_count() == 13 - 2  # 1, 2, 3, 1, 2, 3, 1 jobs; two taken


def test_cancel_of_a_delayed_job_records_cancelled_in_its_queues_slot(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[1]
    job_id = str(rq.schedule(T0, Enqueued(queue, Record, ["p", "x"], track_status=True)))
    assert rq.status(job_id) == Status.WAITING
    assert rq.cancel(job_id)["was"] == "delayed"
    assert rq.status(job_id) == Status.CANCELLED
    assert rq.delayed_count() == 0


_scores = st.one_of(
    st.integers(T0 - 5, T0 + 5),
    st.floats(allow_nan=False),
    st.sampled_from([-math.inf, math.inf, 2.0**60, -(2.0**60), 0.5]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    schedules=st.lists(
        st.dictionaries(st.binary(max_size=6), _scores, max_size=6), min_size=1, max_size=4
    ),
    wrong=st.booleans(),
    start=st.integers(0, 14),
    count=st.integers(0, 8),
)
def test_any_page_of_any_schedules_is_the_slice_of_their_merge(
    cluster: ClusterGroup,  # noqa: F811
    schedules: list[dict[bytes, float]],
    wrong: bool,
    start: int,
    count: int,
) -> None:
    client = Resque(cluster.url(), namespace=f"h{uuid.uuid4().hex[:8]}").redis
    keys = Keys.for_namespace(f"h{uuid.uuid4().hex[:8]}", cluster=True)
    queues = [f"q{i}" for i in range(len(schedules))]
    everything = []
    for queue, members in zip(queues, schedules, strict=True):
        if members:
            client.zadd(keys.for_queue(queue).delayed_schedule, members)
        ranked = client.zrange(keys.for_queue(queue).delayed_schedule, 0, -1, withscores=True)
        pairs = cast("list[tuple[bytes, float]]", ranked)
        everything += [Entry(score, queue, raw(m)) for m, score in pairs]
    if wrong:  # a schedule key of another type: reported, the others read
        client.set(keys.for_queue("qx").delayed_schedule, "not a sorted set")
    page = read_page(client, keys, [*queues, "qx"] if wrong else queues, start, count)
    merged = sorted(everything, key=lambda e: (e.score, e.queue))  # stable: rank kept
    assert page.total == len(everything)
    assert page.entries == merged[start : start + count]
    assert len(page.problems) == int(wrong)
    client.close()
