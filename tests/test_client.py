"""The producer API (``Resque``) against a real Redis: exact keys and values (spec §1, §2, §6)."""

from __future__ import annotations

import copy
import importlib.util
import json
import pickle
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
import redis

from pyresque import (
    Dialect,
    DontCreate,
    Enqueued,
    Events,
    Job,
    JobHandle,
    JobStatus,
    Payload,
    Registry,
    Resque,
    Status,
)
from pyresque.client.admin import queues as admin_queues
from pyresque.client.admin.base import Namespace
from pyresque.jobs.job import JobFunction

HEX32 = re.compile(r"^[0-9a-f]{32}$")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_job.py"


# ----------------------------------------------------------------------------- helpers


def keys_under(client: redis.Redis, namespace: str) -> set[str]:
    """Every key of ``namespace``, without its ``<namespace>:`` prefix."""
    prefix = f"{namespace}:"
    return {k.decode()[len(prefix) :] for k in client.scan_iter(match=f"{prefix}*", count=1000)}


def queue_items(client: redis.Redis, namespace: str, queue: str) -> list[Any]:
    return [json.loads(raw) for raw in client.lrange(f"{namespace}:queue:{queue}", 0, -1)]


def members(client: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in cast("set[bytes]", client.smembers(key))}


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    """A client on the test namespace with its own (empty) events.

    (Named ``rq`` so it does not shadow the ``resque`` fixture of pyresque's pytest plugin.)
    """
    return Resque(redis_url, namespace=namespace, events=Events())


class ClientTestArchive(Job, register=False):
    """A job class that is not in any registry (hooks still run when passed directly)."""

    queue = "archive"

    def perform(self, *args: Any) -> None:
        pass


# ----------------------------------------------------------------------------- enqueue


def test_enqueue_writes_php_resque_shape(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    before = time.time()
    job_id = rq.enqueue("default", "My_Job", {"name": "Chris"})
    after = time.time()

    assert job_id is not None
    assert HEX32.match(job_id)
    raws = redis_client.lrange(f"{namespace}:queue:default", 0, -1)
    assert len(raws) == 1
    item = json.loads(raws[0])
    assert list(item) == ["class", "args", "id", "prefix", "queue_time"]
    assert item["class"] == "My_Job"
    assert item["args"] == [{"name": "Chris"}]
    assert item["id"] == job_id
    assert item["prefix"] == ""
    assert isinstance(item["queue_time"], float)
    assert before <= item["queue_time"] <= after
    # Compact JSON, no spaces.
    assert raws[0] == json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()

    assert members(redis_client, f"{namespace}:queues") == {"default"}
    # No status key for an untracked job; the wake list is pyresque's own key.
    assert keys_under(redis_client, namespace) == {
        "queues",
        "queue:default",
        "pyresque:wake:default",
        "pyresque:queues-changed",
    }
    assert redis_client.type(f"{namespace}:queues") == b"set"
    assert redis_client.type(f"{namespace}:queue:default") == b"list"


@pytest.mark.parametrize(
    ("data", "args"),
    [
        (None, [None]),
        ([], [[]]),
        ([1, 2], [[1, 2]]),
        ({"a": 1}, [{"a": 1}]),
        ("text", ["text"]),
    ],
)
def test_enqueue_wraps_data_like_php(
    rq: Resque, redis_client: redis.Redis, namespace: str, data: Any, args: list[Any]
) -> None:
    rq.enqueue("default", "My_Job", data)
    assert queue_items(redis_client, namespace, "default")[0]["args"] == args


def test_enqueue_pushes_at_the_tail_and_at_front_pushes_at_the_head(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    first = rq.enqueue("default", "My_Job", 1)
    second = rq.enqueue("default", "My_Job", 2)
    urgent = rq.enqueue("default", "My_Job", 0, at_front=True)
    assert [i["id"] for i in queue_items(redis_client, namespace, "default")] == [
        urgent,
        first,
        second,
    ]
    assert members(redis_client, f"{namespace}:queues") == {"default"}


def test_enqueue_requires_a_queue(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    with pytest.raises(ValueError, match="queue name is required"):
        rq.enqueue("", "My_Job", 1)
    assert keys_under(redis_client, namespace) == set()


def test_ruby_dialect_writes_exactly_class_and_args(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, dialect="ruby", events=Events())
    assert resque.enqueue_to("default", "Archive", 44, "masterbrew") is None  # Ruby has no id
    resque.enqueue("default", "My_Job", {"a": 1})
    assert redis_client.lrange(f"{namespace}:queue:default", 0, -1) == [
        b'{"class":"Archive","args":[44,"masterbrew"]}',
        b'{"class":"My_Job","args":[{"a":1}]}',
    ]
    assert keys_under(redis_client, namespace) == {
        "queues",
        "queue:default",
        "pyresque:wake:default",
        "pyresque:queues-changed",
    }


def test_ruby_dialect_still_writes_an_id_when_tracking(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, dialect=Dialect.RUBY, events=Events())
    job_id = resque.enqueue_to("default", "Archive", 44, track_status=True)
    assert job_id is not None
    (item,) = queue_items(redis_client, namespace, "default")
    assert list(item) == ["class", "args", "id", "prefix", "queue_time"]
    assert item["id"] == job_id
    assert redis_client.exists(f"{namespace}:job:{job_id}:status") == 1


def test_enqueue_to_is_positional(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    job_id = rq.enqueue_to("low", "Archive", 44, "masterbrew", {"k": [1]})
    (item,) = queue_items(redis_client, namespace, "low")
    assert item["class"] == "Archive"
    assert item["args"] == [44, "masterbrew", {"k": [1]}]
    assert item["id"] == job_id
    # No arguments at all: an empty list (not [null] as php's enqueue writes).
    rq.enqueue_to("low", "Archive")
    assert queue_items(redis_client, namespace, "low")[1]["args"] == []


def test_enqueue_job_uses_the_class_queue(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue_job(ClientTestArchive, 7)
    (item,) = queue_items(redis_client, namespace, "archive")
    assert item["class"] == "ClientTestArchive"
    assert item["args"] == [7]

    class ClientTestNoQueue(Job, register=False):
        pass

    with pytest.raises(ValueError, match="ClientTestNoQueue has no default queue"):
        rq.enqueue_job(ClientTestNoQueue, 1)


def test_job_function_is_enqueued_by_its_name(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    registry = Registry()

    def send_mail(to: str) -> None:
        pass

    send: JobFunction[..., Any] = registry.job(send_mail, name="Mailer\\Send", queue="mail")
    resque = Resque(redis_url, namespace=namespace, registry=registry, strict=True)
    resque.enqueue_job(send, "a@b.c")
    (item,) = queue_items(redis_client, namespace, "mail")
    assert item["class"] == "Mailer\\Send"
    assert item["args"] == ["a@b.c"]


# ----------------------------------------------------------------------------- namespaces


def test_namespace_with_or_without_colon_gives_the_same_keys(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    queue = f"x{uuid.uuid4().hex[:6]}"
    Resque(redis_url, namespace=namespace, events=Events()).enqueue(queue, "A", 1)
    Resque(redis_url, namespace=f"{namespace}:", events=Events()).enqueue(queue, "A", 2)

    assert [i["args"] for i in queue_items(redis_client, namespace, queue)] == [[1], [2]]
    assert members(redis_client, f"{namespace}:queues") == {queue}
    assert keys_under(redis_client, namespace) == {
        "queues",
        f"queue:{queue}",
        f"pyresque:wake:{queue}",
        "pyresque:queues-changed",
    }
    # Nothing under the default namespace, and no doubled colon.
    assert redis_client.sismember("resque:queues", queue) == 0
    assert list(redis_client.scan_iter(match=f"resque:*{queue}*")) == []
    assert list(redis_client.scan_iter(match=f"{namespace}::*")) == []


def test_default_namespace_is_resque(redis_url: str) -> None:
    resque = Resque(redis_url)
    assert resque.keys.queue("default") == "resque:queue:default"
    assert resque.keys.queues == "resque:queues"
    assert resque.keys.status("abc", "pfx") == "resque:job:pfx_abc:status"


@pytest.fixture
def bare_queue(redis_client: redis.Redis) -> Iterator[str]:
    """A unique queue name for tests that write without a namespace; cleaned up after."""
    queue = f"t{uuid.uuid4().hex[:8]}"
    yield queue
    redis_client.srem("queues", queue)
    redis_client.delete(f"queue:{queue}", f"pyresque:wake:{queue}", "pyresque:queues-changed")
    for key in redis_client.scan_iter(match=f"job:{queue}_*:status"):
        redis_client.delete(key)


def test_empty_namespace_means_no_prefix(
    redis_url: str, redis_client: redis.Redis, bare_queue: str
) -> None:
    resque = Resque(redis_url, namespace="", events=Events())
    job_id = resque.enqueue(bare_queue, "A", 1, track_status=True, prefix=bare_queue)
    assert [json.loads(r)["id"] for r in redis_client.lrange(f"queue:{bare_queue}", 0, -1)] == [
        job_id
    ]
    assert redis_client.sismember("queues", bare_queue) == 1
    assert redis_client.exists(f"job:{bare_queue}_{job_id}:status") == 1
    assert resque.size(bare_queue) == 1
    assert bare_queue in resque.queues()
    assert list(redis_client.scan_iter(match=f":*{bare_queue}*")) == []


# ----------------------------------------------------------------------------- status


def test_track_status_writes_a_waiting_packet(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    before = int(time.time())
    job_id = rq.enqueue("default", "My_Job", {"a": 1}, track_status=True)
    after = int(time.time())
    assert job_id is not None

    key = f"{namespace}:job:{job_id}:status"
    raw = redis_client.get(key)
    assert raw is not None
    packet = json.loads(raw)
    assert list(packet) == ["status", "updated", "started", "result"]
    assert packet["status"] == 1
    assert packet["result"] is None
    assert packet["updated"] == packet["started"]
    assert isinstance(packet["updated"], int)
    assert before <= packet["updated"] <= after
    assert redis_client.ttl(key) == -1
    assert redis_client.type(key) == b"string"

    assert rq.status(job_id) is Status.WAITING
    status = rq.job_status(job_id)
    assert isinstance(status, JobStatus)
    assert status.status is Status.WAITING
    assert status.started == packet["started"]
    assert keys_under(redis_client, namespace) == {
        "queues",
        "queue:default",
        "pyresque:wake:default",
        "pyresque:queues-changed",
        f"job:{job_id}:status",
    }


def test_track_status_with_prefix(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    job_id = rq.enqueue("default", "My_Job", {"a": 1}, track_status=True, prefix="shop")
    assert job_id is not None
    (item,) = queue_items(redis_client, namespace, "default")
    assert item["prefix"] == "shop"
    assert redis_client.exists(f"{namespace}:job:shop_{job_id}:status") == 1
    assert redis_client.exists(f"{namespace}:job:{job_id}:status") == 0
    assert rq.status(job_id, "shop") is Status.WAITING
    assert rq.status(job_id) is None


def test_status_of_untracked_or_unknown_jobs_is_none(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    job_id = rq.enqueue("default", "My_Job", 1)
    assert job_id is not None
    assert rq.status(job_id) is None
    assert rq.status("0" * 32) is None
    # Written by php-resque for a running / completed job.
    redis_client.set(f"{namespace}:job:a1:status", '{"status":2,"updated":1,"started":1}')
    redis_client.set(f"{namespace}:job:a2:status", '{"status":4,"updated":2}')
    redis_client.set(f"{namespace}:job:a3:status", "garbage")
    assert rq.status("a1") is Status.RUNNING
    assert rq.status("a2") is Status.COMPLETE
    assert rq.status("a3") is None


# ----------------------------------------------------------------------------- enqueue_many


def test_enqueue_many_uses_one_pipeline_and_keeps_order(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines: list[object] = []
    real_pipeline = rq.redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        pipelines.append(pipe)
        return pipe

    monkeypatch.setattr(rq.redis, "pipeline", counting_pipeline)
    ids = rq.enqueue_many(
        [
            Enqueued("a", "JobA", [1]),
            Enqueued("b", "JobB", [{"x": 1}], track_status=True),
            Enqueued("a", "JobA", [2]),
            Enqueued("a", "JobA", [3], track_status=True),
            Enqueued("c", "JobC", []),
        ]
    )
    assert len(pipelines) == 1
    assert len(ids) == 5
    assert all(i is not None and HEX32.match(i) for i in ids)
    assert len(set(ids)) == 5

    a = queue_items(redis_client, namespace, "a")
    assert [(i["id"], i["args"]) for i in a] == [(ids[0], [1]), (ids[2], [2]), (ids[3], [3])]
    assert [
        (i["id"], i["class"], i["args"]) for i in queue_items(redis_client, namespace, "b")
    ] == [(ids[1], "JobB", [{"x": 1}])]
    assert [i["id"] for i in queue_items(redis_client, namespace, "c")] == [ids[4]]
    assert members(redis_client, f"{namespace}:queues") == {"a", "b", "c"}
    assert keys_under(redis_client, namespace) == {
        "queues",
        *(f"queue:{q}" for q in "abc"),
        *(f"pyresque:wake:{q}" for q in "abc"),
        "pyresque:queues-changed",
        f"job:{ids[1]}:status",
        f"job:{ids[3]}:status",
    }
    for tracked in (ids[1], ids[3]):
        raw = redis_client.get(f"{namespace}:job:{tracked}:status")
        assert raw is not None
        assert json.loads(raw)["status"] == 1


def test_enqueue_many_returns_handles(rq: Resque) -> None:
    handles = rq.enqueue_many([Enqueued("h", "JobA", [1]), Enqueued("h", "JobA", [2])])
    assert all(isinstance(h, JobHandle) for h in handles)
    assert rq.redis.llen(rq.keys.queue("h")) == 2
    first = handles[0]
    assert first is not None
    assert first.status() is None  # a handle on its producer (the job is untracked)


def test_handles_of_two_producers_answer_for_their_own_and_carry_no_dict(
    rq: Resque, redis_url: str, namespace: str
) -> None:
    # Handles are made per job by enqueue_many: no attribute dict each (issue 12).
    other = Resque(redis_url, namespace=f"{namespace}-other")
    try:
        mine = rq.enqueue("h", "JobA", 1, track_status=True)
        theirs = other.enqueue_many([Enqueued("h", "JobA", [2], track_status=True)])[0]
        assert mine is not None
        assert theirs is not None
        assert not hasattr(mine, "__dict__")
        assert not hasattr(theirs, "__dict__")
        assert mine.status() == Status.WAITING
        assert theirs.status() == Status.WAITING
        assert rq.status(theirs) is None
        assert other.status(mine) is None
        again = type(mine)(theirs, other)  # a handle's own type, given another producer
        assert again.status() == Status.WAITING
        assert isinstance(again, JobHandle)
        assert pickle.loads(pickle.dumps(mine)) == mine
        assert copy.copy(theirs) == theirs
    finally:
        other.redis.close()


def test_enqueue_many_more_than_one_chunk(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    jobs = [Enqueued("big" if n % 5 else "other", "Bulk", [n]) for n in range(2600)]
    ids = rq.enqueue_many(jobs)
    assert len(ids) == 2600
    big = queue_items(redis_client, namespace, "big")
    other = queue_items(redis_client, namespace, "other")
    assert [i["args"][0] for i in big] == [n for n in range(2600) if n % 5]
    assert [i["args"][0] for i in other] == [n for n in range(2600) if not n % 5]
    assert [i["id"] for i in big] == [ids[n] for n in range(2600) if n % 5]
    assert rq.size("big") + rq.size("other") == 2600


def test_enqueue_many_tracked_over_one_chunk(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    ids = rq.enqueue_many(Enqueued("t", "Bulk", [n], track_status=True) for n in range(1500))
    assert [i["id"] for i in queue_items(redis_client, namespace, "t")] == ids
    pipe = redis_client.pipeline()
    for job_id in ids:
        pipe.exists(f"{namespace}:job:{job_id}:status")
    assert sum(pipe.execute()) == 1500


def test_enqueue_many_ruby_dialect_and_empty(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, dialect="ruby", events=Events())
    assert resque.enqueue_many([]) == []
    assert keys_under(redis_client, namespace) == set()
    ids = resque.enqueue_many([Enqueued("q", "Archive", [44, "masterbrew"])])
    assert ids == [None]
    assert redis_client.lrange(f"{namespace}:queue:q", 0, -1) == [
        b'{"class":"Archive","args":[44,"masterbrew"]}'
    ]


def test_enqueue_many_runs_hooks_and_skips_vetoed(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    after: list[tuple[str, Any, str | None]] = []

    def veto_odd(name: str, args: list[Any], queue: str, job_id: str) -> bool:
        return not args[0] % 2

    rq.events.listen("before_enqueue", veto_odd)
    rq.events.listen("after_enqueue", lambda n, a, q, i: after.append((q, a, i)))
    ids = rq.enqueue_many(Enqueued("q", "X", [n]) for n in range(5))
    assert ids[1] is None
    assert ids[3] is None
    assert [i["id"] for i in queue_items(redis_client, namespace, "q")] == [ids[0], ids[2], ids[4]]
    assert after == [("q", [0], ids[0]), ("q", [2], ids[2]), ("q", [4], ids[4])]


# ----------------------------------------------------------------------------- raw access


def test_push_pop_peek_size_queues(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    assert rq.size("q1") == 0
    assert rq.pop("q1") is None
    assert rq.peek("q1") == []
    assert rq.queues() == []

    rq.push("q1", {"class": "A", "args": [1]})
    rq.push("q1", {"class": "B", "args": ["é/"]})
    rq.push("q2", {"class": "C", "args": []})
    # push writes exactly the item (no id added), Ruby's encoding.
    assert redis_client.lrange(f"{namespace}:queue:q1", 0, -1) == [
        b'{"class":"A","args":[1]}',
        '{"class":"B","args":["é/"]}'.encode(),
    ]
    assert members(redis_client, f"{namespace}:queues") == {"q1", "q2"}
    assert rq.queues() == ["q1", "q2"]
    assert rq.size("q1") == 2

    assert rq.peek("q1") == [{"class": "A", "args": [1]}]
    assert rq.peek("q1", 1) == [{"class": "B", "args": ["é/"]}]
    assert rq.peek("q1", 0, 10) == [
        {"class": "A", "args": [1]},
        {"class": "B", "args": ["é/"]},
    ]
    assert rq.size("q1") == 2  # peek does not remove

    assert rq.pop("q1") == {"class": "A", "args": [1]}
    assert rq.size("q1") == 1
    assert redis_client.lrange(f"{namespace}:queue:q1", 0, -1) == [
        '{"class":"B","args":["é/"]}'.encode()
    ]


def test_push_refuses_non_json(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    with pytest.raises(TypeError, match="type set"):
        rq.push("q", {"class": "A", "args": [{1}]})
    assert keys_under(redis_client, namespace) == set()


def test_pop_and_peek_give_garbage_back_as_text(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    redis_client.rpush(f"{namespace}:queue:q", b"not json", b"\xff")
    assert rq.peek("q", 0, 2) == ["not json", "\ufffd"]
    # (pop is annotated as returning a dict or None, but hands back undecodable items as text)
    popped: object = rq.pop("q")
    assert popped == "not json"


def test_remove_queue(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    rq.enqueue("q1", "A", 1)
    rq.enqueue("q1", "A", 2)
    rq.enqueue("q2", "A", 3)
    assert rq.remove_queue("q1") == 2
    assert members(redis_client, f"{namespace}:queues") == {"q2"}
    assert keys_under(redis_client, namespace) == {
        "queues",
        "queue:q2",
        "pyresque:wake:q2",
        "pyresque:queues-changed",
    }
    assert rq.remove_queue("q1") == 0
    assert rq.remove_queue("q2") == 1
    # Only the (bounded, one-element) new-queue wake-up list remains.
    assert keys_under(redis_client, namespace) == {"pyresque:queues-changed"}


# ----------------------------------------------------------------------------- dequeue


def test_dequeue_by_class(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    keep = rq.enqueue("q", "Keep", 1)
    rq.enqueue("q", "Drop", 1)
    rq.enqueue_to("q", "Drop", 1, 2)
    redis_client.rpush(f"{namespace}:queue:q", b'{"class":"Drop","args":[3]}', b"garbage")
    assert rq.dequeue("q", "Drop") == 3
    raws = redis_client.lrange(f"{namespace}:queue:q", 0, -1)
    assert [json.loads(raws[0])["id"], raws[1]] == [keep, b"garbage"]
    assert rq.dequeue("q", "Drop") == 0
    # Dequeuing never forgets the queue name.
    assert members(redis_client, f"{namespace}:queues") == {"q"}


def test_dequeue_by_class_and_php_data(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue("q", "Mail", {"to": "a"})
    b = rq.enqueue("q", "Mail", {"to": "b"})
    rq.enqueue("q", "Mail", {"to": "a"})
    c = rq.enqueue("q", "Other", {"to": "a"})
    assert rq.dequeue("q", "Mail", {"to": "a"}) == 2
    assert [i["id"] for i in queue_items(redis_client, namespace, "q")] == [b, c]
    assert rq.dequeue("q", "Mail", {"to": "zzz"}) == 0
    assert rq.size("q") == 2


def test_dequeue_by_class_and_ruby_positional_args(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, dialect="ruby", events=Events())
    resque.enqueue_to("q", "Archive", 44, "masterbrew")
    resque.enqueue_to("q", "Archive", 44, "masterbrew")  # byte-identical duplicate
    resque.enqueue_to("q", "Archive", 45, "masterbrew")
    resque.enqueue_to("q", "Archive", 44)
    # And one written by PHP with the same class but an id (Ruby's LREM would miss it).
    redis_client.rpush(
        f"{namespace}:queue:q",
        b'{"class":"Archive","args":[44,"masterbrew"],"id":"abc","queue_time":1.5}',
    )
    assert resque.dequeue("q", "Archive", 44, "masterbrew") == 3
    assert redis_client.lrange(f"{namespace}:queue:q", 0, -1) == [
        b'{"class":"Archive","args":[45,"masterbrew"]}',
        b'{"class":"Archive","args":[44]}',
    ]


def test_dequeue_by_id(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    a = rq.enqueue("q", "Mail", {"to": "a"})
    b = rq.enqueue("q", "Mail", {"to": "a"})
    assert a is not None
    assert b is not None
    assert rq.dequeue("q", job_id=a) == 1
    assert [i["id"] for i in queue_items(redis_client, namespace, "q")] == [b]
    assert rq.dequeue("q", "Other", job_id=b) == 0  # class and id must both match
    assert rq.dequeue("q", "Mail", job_id=b) == 1
    assert rq.size("q") == 0


def test_dequeue_without_match_or_queue(rq: Resque) -> None:
    assert rq.dequeue("empty", "Mail") == 0
    rq.enqueue("q", "Mail", 1)
    assert rq.dequeue("q", "Nope") == 0
    assert rq.dequeue("q", job_id="0" * 32) == 0
    assert rq.size("q") == 1
    with pytest.raises(ValueError, match="job_id"):
        rq.dequeue("q")


def test_dequeue_counts_only_what_it_removed_when_a_worker_pops_meanwhile(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{namespace}:queue:q"
    first = rq.enqueue("q", "Drop", 1)
    keep = rq.enqueue("q", "Keep", 2)
    rq.enqueue("q", "Drop", 3)
    rq.enqueue("q", "Drop", 4)
    real_remove = admin_queues.remove
    popped: list[Any] = []

    def pop_then_remove(resque: Namespace, queue: str, items: list[bytes]) -> int:
        # Another client (a worker) takes the head job after dequeue has read the list.
        popped.append(json.loads(cast(bytes, redis_client.lpop(key))))
        late = {"class": "Drop", "args": [5], "id": "late"}
        redis_client.rpush(key, json.dumps(late))  # and a new job arrives
        return real_remove(resque, queue, items)

    monkeypatch.setattr(admin_queues, "remove", pop_then_remove)
    assert rq.dequeue("q", "Drop") == 2
    assert popped[0]["id"] == first
    assert [i["id"] for i in queue_items(redis_client, namespace, "q")] == [keep, "late"]


def test_dequeue_removes_all_matches_even_when_workers_pop_between_pages(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{namespace}:queue:q"
    pipe = redis_client.pipeline()
    for n in range(1000):
        pipe.rpush(key, json.dumps({"class": "Keep", "args": [n]}))
    for n in range(10):
        pipe.rpush(key, json.dumps({"class": "Drop", "args": [n]}))
    pipe.execute()
    real_lrange = rq.redis.lrange
    reads: list[int] = []

    def lrange_while_workers_pop(name: str, start: int, end: int) -> Any:
        items = real_lrange(name, start, end)
        reads.append(start)
        if len(reads) == 1:
            for _ in range(5):  # workers take five jobs from the head after the first read
                redis_client.lpop(key)
        return items

    # Regression: dequeue used to read the list in pages of 1000 by index, so a pop
    # between two pages shifted the list and jobs at the page boundary were never seen.
    monkeypatch.setattr(rq.redis, "lrange", lrange_while_workers_pop)
    assert rq.dequeue("q", "Drop") == 10
    remaining = [json.loads(r)["class"] for r in redis_client.lrange(key, 0, -1)]
    assert remaining == ["Keep"] * 995


def test_dequeue_over_many_pages(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    rq.enqueue_many(Enqueued("q", "Drop" if n % 3 == 0 else "Keep", [n]) for n in range(2500))
    assert rq.dequeue("q", "Drop") == len(range(0, 2500, 3))
    assert {i["class"] for i in queue_items(redis_client, namespace, "q")} == {"Keep"}
    assert rq.size("q") == 2500 - len(range(0, 2500, 3))


# ----------------------------------------------------------------------------- info / stats


def test_info_and_stats(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    assert rq.info() == {
        "pending": 0,
        "processed": 0,
        "queues": 0,
        "workers": 0,
        "working": 0,
        "failed": 0,
        "servers": rq.info()["servers"],
    }
    rq.enqueue("a", "A", 1)
    rq.enqueue("a", "A", 2)
    rq.enqueue("b", "A", 3)
    redis_client.sadd(f"{namespace}:queues", "empty")
    ns = namespace
    redis_client.set(f"{ns}:stat:processed", 7)
    redis_client.set(f"{ns}:stat:failed", 2)
    redis_client.set(f"{ns}:stat:processed:h1:1:a", 5)
    redis_client.sadd(f"{ns}:workers", "h1:1:a", "h1:2:b", "h2:3:*")
    redis_client.set(f"{ns}:worker:h1:1:a", '{"queue":"a","run_at":"x","payload":{}}')
    redis_client.set(f"{ns}:worker:h1:1:a:started", "2026-01-12 15:23:55 -0500")
    redis_client.set(f"{ns}:worker:h1:2:b:started", "2026-01-12 15:23:55 -0500")
    redis_client.rpush(f"{ns}:failed", "{}", "{}", "null")

    info = rq.info()
    kwargs = redis_client.connection_pool.connection_kwargs
    assert info == {
        "pending": 3,
        "processed": 7,
        "queues": 3,
        "workers": 3,
        "working": 1,
        "failed": 3,
        "servers": [f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"],
    }
    assert rq.stat("processed") == 7
    assert rq.stat("failed") == 2
    assert rq.stat("processed", "h1:1:a") == 5
    assert rq.stat("failed", "h1:1:a") == 0


# ----------------------------------------------------------------------------- hooks


def test_hooks_run_in_order_around_the_push(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    calls: list[tuple[Any, ...]] = []

    def size() -> int:
        return int(redis_client.llen(f"{namespace}:queue:q"))

    class ClientTestOrderJob(Job, register=False):
        @classmethod
        def before_enqueue(cls, queue: str, args: list[Any]) -> bool | None:
            calls.append(("class before_enqueue", queue, args, size()))
            return None

        @classmethod
        def after_enqueue(cls, queue: str, args: list[Any], job_id: str | None) -> None:
            calls.append(("class after_enqueue", queue, args, job_id, size()))

    def global_before(name: str, args: list[Any], queue: str, job_id: str | None) -> None:
        calls.append(("global before_enqueue", name, args, queue, job_id, size()))

    def global_after(name: str, args: list[Any], queue: str, job_id: str | None) -> None:
        calls.append(("global after_enqueue", name, args, queue, job_id, size()))

    rq.events.listen("after_enqueue", global_after)
    rq.events.listen("before_enqueue", global_before)
    job_id = rq.enqueue("q", ClientTestOrderJob, {"a": 1})
    assert job_id is not None
    name = "ClientTestOrderJob"
    assert calls == [
        ("class before_enqueue", "q", [{"a": 1}], 0),
        ("global before_enqueue", name, [{"a": 1}], "q", job_id, 0),
        ("class after_enqueue", "q", [{"a": 1}], job_id, 1),
        ("global after_enqueue", name, [{"a": 1}], "q", job_id, 1),
    ]


def test_class_before_enqueue_returning_false_vetoes(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    calls: list[str] = []

    class ClientTestVetoJob(Job, register=False):
        @classmethod
        def before_enqueue(cls, queue: str, args: list[Any]) -> bool | None:
            calls.append("class before")
            return False

        @classmethod
        def after_enqueue(cls, queue: str, args: list[Any], job_id: str | None) -> None:
            calls.append("class after")

    rq.events.listen("before_enqueue", lambda *a: calls.append("global before"))
    rq.events.listen("after_enqueue", lambda *a: calls.append("global after"))
    assert rq.enqueue("q", ClientTestVetoJob, {"a": 1}, track_status=True) is None
    assert rq.enqueue_to("q", ClientTestVetoJob, 1) is None
    assert calls == ["class before", "class before"]
    assert keys_under(redis_client, namespace) == set()


def test_class_before_enqueue_raising_dont_create_vetoes(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    class ClientTestDontCreateJob(Job, register=False):
        @classmethod
        def before_enqueue(cls, queue: str, args: list[Any]) -> bool | None:
            raise DontCreate

    assert rq.enqueue("q", ClientTestDontCreateJob, 1) is None
    assert keys_under(redis_client, namespace) == set()


def test_dont_create_from_a_listener_vetoes(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    after: list[Any] = []
    seen: list[tuple[Any, ...]] = []

    def before(name: str, args: list[Any], queue: str, job_id: str | None) -> None:
        seen.append((name, args, queue))
        if name == "Blocked":
            raise DontCreate

    rq.events.listen("before_enqueue", before)
    rq.events.listen("after_enqueue", lambda *a: after.append(a))
    assert rq.enqueue("q", "Blocked", {"a": 1}, track_status=True) is None
    assert keys_under(redis_client, namespace) == set()
    assert after == []
    allowed = rq.enqueue("q", "Allowed", {"a": 1})
    assert allowed is not None
    assert seen == [("Blocked", [{"a": 1}], "q"), ("Allowed", [{"a": 1}], "q")]
    assert after == [("Allowed", [{"a": 1}], "q", allowed)]
    assert [i["class"] for i in queue_items(redis_client, namespace, "q")] == ["Allowed"]


def test_listener_returning_false_vetoes(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.events.listen("before_enqueue", lambda *a: False)
    assert rq.enqueue("q", "A", 1) is None
    assert keys_under(redis_client, namespace) == set()


def test_listeners_do_not_leak_between_clients(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    vetoing = Events()
    vetoing.listen("before_enqueue", lambda *a: False)
    assert Resque(redis_url, namespace=namespace, events=vetoing).enqueue("q", "A", 1) is None
    assert Resque(redis_url, namespace=namespace, events=Events()).enqueue("q", "A", 1)
    assert redis_client.llen(f"{namespace}:queue:q") == 1


def test_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event 'before_enqeue'"):
        Events().listen("before_enqeue", lambda *a: None)


# ----------------------------------------------------------------------------- strict mode


def test_unregistered_names_are_allowed_by_default(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    assert rq.enqueue("q", "App\\Jobs\\NotHere", {"a": 1}) is not None
    assert queue_items(redis_client, namespace, "q")[0]["class"] == "App\\Jobs\\NotHere"


def test_strict_refuses_unregistered_names(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    registry = Registry()

    class ClientTestStrictJob(Job, register=False):
        pass

    registry.register(ClientTestStrictJob, "Legacy_Name")
    resque = Resque(redis_url, namespace=namespace, registry=registry, strict=True, events=Events())
    with pytest.raises(LookupError, match=r"no job class is registered under 'NotHere' \(strict"):
        resque.enqueue("q", "NotHere", 1)
    with pytest.raises(LookupError, match="ClientTestArchive"):
        resque.enqueue_to("q", ClientTestArchive, 1)
    with pytest.raises(LookupError):
        resque.enqueue_many([Enqueued("q", "NotHere", [1])])
    assert keys_under(redis_client, namespace) == set()

    assert resque.enqueue("q", ClientTestStrictJob, 1)
    assert resque.enqueue("q", "ClientTestStrictJob", 2)
    assert resque.enqueue("q", "Legacy_Name", 3)
    assert [i["class"] for i in queue_items(redis_client, namespace, "q")] == [
        "ClientTestStrictJob",
        "ClientTestStrictJob",
        "Legacy_Name",
    ]


class ClientTestGlobalJob(Job):
    """Registered in the process-wide registry under its class name."""

    def perform(self) -> None:
        pass


def test_strict_uses_the_global_registry_by_default(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    strict = Resque(redis_url, namespace=namespace, strict=True, events=Events())
    assert strict.enqueue("q", ClientTestGlobalJob, 1)
    assert strict.enqueue("q", "ClientTestGlobalJob", 2)
    # A private registry, even an empty one, replaces the global one.
    private = Resque(
        redis_url, namespace=namespace, registry=Registry(), strict=True, events=Events()
    )
    with pytest.raises(LookupError, match="ClientTestGlobalJob"):
        private.enqueue("q", "ClientTestGlobalJob", 3)
    assert redis_client.llen(f"{namespace}:queue:q") == 2


# ----------------------------------------------------------------------------- the example


def load_example() -> ModuleType:
    """Import examples/user_job.py once (its UserJob registers globally by name)."""
    if "user_job" in sys.modules:
        return sys.modules["user_job"]
    spec = importlib.util.spec_from_file_location("user_job", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_job"] = module
    spec.loader.exec_module(module)
    return module


def test_example_user_job_main(
    redis_url: str,
    redis_client: redis.Redis,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load_example()
    job_id = example.main(redis_url, namespace=namespace)
    out = capsys.readouterr().out
    assert isinstance(job_id, str)
    assert HEX32.match(job_id)
    (item,) = queue_items(redis_client, namespace, "default")
    assert item["class"] == "UserJob"
    assert item["id"] == job_id
    raw = redis_client.get(f"{namespace}:job:{job_id}:status")
    assert raw is not None
    assert json.loads(raw)["status"] == 1
    assert job_id in out
    assert "1" in out
    assert "default" in out
    assert "WAITING" in out
    # The job itself reads php-resque's ``self.args``: the data given to enqueue.
    assert example.UserJob.resque_name == "UserJob"
    raw_job = redis_client.lindex(f"{namespace}:queue:default", 0)
    assert raw_job is not None
    example.UserJob(Payload.decode(raw_job), "default").run_perform()
    assert capsys.readouterr().out == "Welcome, Chris <chris@example.com>!\n"


def test_peek_and_pop_show_any_queue_item_without_raising(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    redis_client.rpush(f"{namespace}:queue:q", deep, b'{"a":NaN}', b"\xff", b'{"class":"J"}')
    assert rq.peek("q", 0, 4) == [deep.decode(), '{"a":NaN}', "\ufffd", {"class": "J"}]
    assert rq.pop("q") == deep.decode()
