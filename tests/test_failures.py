"""The ``failed`` list (spec §4): records written by Ruby and php-resque, read and retried."""

from __future__ import annotations

import calendar
import json
import re
import time
from typing import Any, cast

import pytest
import redis

from pyresque import Events, Resque
from pyresque.exceptions import MalformedPayload
from pyresque.protocol.backtrace import resque_time
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.failure import Failure, Failures

RETRIED_AT = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} UTC$")

# Ruby Resque::Failure::Redis#save (spec §4.1), byte for byte.
RUBY = (
    b'{"failed_at":"2026/01/12 15:23:55 UTC",'
    b'"payload":{"class":"Archive","args":[44,"masterbrew"]},'
    b'"exception":"RuntimeError","error":"disk full",'
    b'"backtrace":["/app/jobs/archive.rb:12:in `perform\'","/app/lib/tool.rb:3:in `call\'"],'
    b'"worker":"h1:100:archive,default","queue":"archive"}'
)
# resque/php-resque >= 1.3.4 (RedisFailure, date('c'), json_encode escapes).
PHP = (
    b'{"failed_at":"2026-01-12T15:23:55-05:00",'
    b'"payload":{"class":"App\\\\Jobs\\\\Mail","args":[{"to":"ren\\u00e9e@example.com",'
    b'"url":"http:\\/\\/example.com\\/x"}],"id":"0123456789abcdef0123456789abcdef",'
    b'"prefix":"shop","queue_time":1768249435.1234},'
    b'"exception":"InvalidArgumentException","error":"Bad address \\/ r\\u00e9e",'
    b'"backtrace":["#0 \\/var\\/www\\/app\\/Mail.php(12): App\\\\Jobs\\\\Mail->perform()",'
    b'"#1 {main}"],"worker":"h2:200:default","queue":"default"}'
)
# chrisboulton/php-resque (no prefix, strftime date, its DirtyExit class).
CHRISBOULTON = (
    b'{"failed_at":"Mon Jan 12 15:23:55 EST 2026",'
    b'"payload":{"class":"My_Job","args":[{"name":"Chris"}],'
    b'"id":"5d3629bf42919823d35ddf6ca8e1b609","queue_time":1494823197.9535},'
    b'"exception":"Resque_Job_DirtyExitException","error":"Job exited with exit code 255",'
    b'"backtrace":[],"worker":"h3:300:default","queue":"default"}'
)
GARBAGE = b"\xffnot json"


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    return Resque(redis_url, namespace=namespace, events=Events())


@pytest.fixture
def failures(rq: Resque) -> Failures:
    return rq.failures


def failed_raw(client: redis.Redis, namespace: str) -> list[bytes]:
    return cast("list[bytes]", client.lrange(f"{namespace}:failed", 0, -1))


def queue_raw(client: redis.Redis, namespace: str, queue: str) -> list[bytes]:
    return cast("list[bytes]", client.lrange(f"{namespace}:queue:{queue}", 0, -1))


def without_retried_at(raw: bytes) -> dict[str, Any]:
    item = json.loads(raw)
    assert isinstance(item, dict)
    item.pop("retried_at", None)
    return item


def assert_recent_retried_at(value: object) -> None:
    assert isinstance(value, str)
    assert RETRIED_AT.match(value), value
    when = calendar.timegm(time.strptime(value, "%Y/%m/%d %H:%M:%S UTC"))
    assert abs(when - time.time()) < 5


@pytest.fixture
def seeded(redis_client: redis.Redis, namespace: str) -> list[bytes]:
    """Ruby, php-resque and chrisboulton records plus a null and a garbage entry."""
    records = [RUBY, PHP, CHRISBOULTON, b"null", GARBAGE]
    redis_client.rpush(f"{namespace}:failed", *records)
    return records


# ----------------------------------------------------------------------------- reading


def test_records_decode_in_every_dialect(failures: Failures, seeded: list[bytes]) -> None:
    assert failures.count() == 5
    ruby, php, chris, null, garbage = failures.list(0, 10)

    assert ruby.index == 0
    assert ruby.raw == RUBY
    assert ruby.parsed
    assert ruby.failed_at == "2026/01/12 15:23:55 UTC"
    assert ruby.payload == {"class": "Archive", "args": [44, "masterbrew"]}
    assert ruby.class_name == "Archive"
    assert ruby.args == [44, "masterbrew"]
    assert ruby.exception == "RuntimeError"
    assert ruby.error == "disk full"
    assert ruby.backtrace == [
        "/app/jobs/archive.rb:12:in `perform'",
        "/app/lib/tool.rb:3:in `call'",
    ]
    assert ruby.worker == "h1:100:archive,default"
    assert ruby.queue == "archive"
    assert ruby.retried_at is None

    assert php.index == 1
    assert php.parsed
    assert php.failed_at == "2026-01-12T15:23:55-05:00"
    assert php.class_name == "App\\Jobs\\Mail"
    assert php.args == [{"to": "renée@example.com", "url": "http://example.com/x"}]
    assert php.payload["id"] == "0123456789abcdef0123456789abcdef"
    assert php.exception == "InvalidArgumentException"
    assert php.error == "Bad address / rée"
    assert php.backtrace == [
        "#0 /var/www/app/Mail.php(12): App\\Jobs\\Mail->perform()",
        "#1 {main}",
    ]
    assert php.worker == "h2:200:default"
    assert php.queue == "default"

    assert chris.parsed
    assert chris.failed_at == "Mon Jan 12 15:23:55 EST 2026"
    assert chris.exception == "Resque_Job_DirtyExitException"
    assert chris.backtrace == []
    assert "prefix" not in chris.payload

    for index, entry, raw in ((3, null, b"null"), (4, garbage, GARBAGE)):
        assert entry.index == index
        assert entry.raw == raw
        assert not entry.parsed
        assert entry.payload is None
        assert entry.class_name == ""
        assert entry.args == []
        assert entry.queue == ""


def test_list_pages_and_get(failures: Failures, redis_client: redis.Redis, namespace: str) -> None:
    assert failures.count() == 0
    assert failures.list() == []
    assert failures.get(0) is None
    records = [
        failure_record({"class": "J", "args": [n]}, "RuntimeError", f"e{n}", [], "h:1:q", "q")
        for n in range(25)
    ]
    redis_client.rpush(f"{namespace}:failed", *records)

    first = failures.list()
    assert [f.index for f in first] == list(range(20))
    assert [f.args for f in first] == [[n] for n in range(20)]
    second = failures.list(20, 20)
    assert [f.index for f in second] == [20, 21, 22, 23, 24]
    assert [f.error for f in second] == ["e20", "e21", "e22", "e23", "e24"]
    assert failures.list(5, 2)[1].index == 6
    assert failures.list(100) == []

    got = failures.get(7)
    assert isinstance(got, Failure)
    assert got.index == 7
    assert got.args == [7]
    assert got.raw == records[7].encode()
    assert failures.get(25) is None
    assert [f.index for f in failures] == list(range(25))


def test_failure_record_has_rubys_field_set_and_order() -> None:
    item = json.loads(
        failure_record({"class": "J", "args": []}, "ValueError", "bad", ["a:1"], "h:1:q", "q")
    )
    assert list(item) == [
        "failed_at",
        "payload",
        "exception",
        "error",
        "backtrace",
        "worker",
        "queue",
    ]
    assert RETRIED_AT.match(item["failed_at"])
    assert item["failed_at"] == resque_time(
        calendar.timegm(time.strptime(item["failed_at"], "%Y/%m/%d %H:%M:%S UTC"))
    )


def test_listing_does_not_crash_on_odd_entries(
    failures: Failures, redis_client: redis.Redis, namespace: str
) -> None:
    odd = [b"null", b"[]", b'"text"', b"{}", b"42", b'{"failed_at":5,"backtrace":"x"}', GARBAGE]
    redis_client.rpush(f"{namespace}:failed", *odd)
    entries = list(failures)
    assert [e.raw for e in entries] == odd
    assert [e.parsed for e in entries] == [False, False, False, False, False, True, False]
    assert entries[5].backtrace == []  # a non-list backtrace is not trusted


# ----------------------------------------------------------------------------- requeue


def test_requeue_ruby_record(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    assert failures.requeue(0)

    # A fresh Ruby-shaped payload, byte for byte, at the tail of the record's queue.
    assert queue_raw(redis_client, namespace, "archive") == [
        b'{"class":"Archive","args":[44,"masterbrew"]}'
    ]
    assert redis_client.sismember(f"{namespace}:queues", "archive") == 1
    # The record stays in place, now with retried_at; everything else is untouched.
    raws = failed_raw(redis_client, namespace)
    assert len(raws) == 5
    assert raws[1:] == seeded[1:]
    record = json.loads(raws[0])
    assert list(record)[-1] == "retried_at"
    assert_recent_retried_at(record["retried_at"])
    assert without_retried_at(raws[0]) == json.loads(RUBY)
    entry = failures.get(0)
    assert entry is not None
    assert entry.retried_at == record["retried_at"]


def test_requeue_php_record_keeps_class_args_and_id(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    redis_client.rpush(f"{namespace}:queue:default", b'{"class":"Earlier","args":[]}')
    assert failures.requeue(1)
    raws = queue_raw(redis_client, namespace, "default")
    assert len(raws) == 2
    assert raws[0] == b'{"class":"Earlier","args":[]}'  # pushed at the tail
    pushed = json.loads(raws[1])
    original = json.loads(PHP)["payload"]
    assert pushed["class"] == original["class"] == "App\\Jobs\\Mail"
    assert pushed["args"] == original["args"]
    assert pushed["id"] == original["id"]
    assert pushed["prefix"] == "shop"
    assert list(pushed)[:4] == ["class", "args", "id", "prefix"]
    record = json.loads(failed_raw(redis_client, namespace)[1])
    assert_recent_retried_at(record["retried_at"])
    assert without_retried_at(failed_raw(redis_client, namespace)[1]) == json.loads(PHP)
    # The job was not tracked (no status key), so none is created.
    assert redis_client.exists(f"{namespace}:job:shop_{original['id']}:status") == 0


def test_requeue_chrisboulton_record(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    assert failures.requeue(2)
    (raw,) = queue_raw(redis_client, namespace, "default")
    pushed = json.loads(raw)
    assert pushed["class"] == "My_Job"
    assert pushed["args"] == [{"name": "Chris"}]
    assert pushed["id"] == "5d3629bf42919823d35ddf6ca8e1b609"
    assert pushed.get("prefix", "") == ""


def test_requeue_resets_an_existing_status_to_waiting(
    failures: Failures, redis_client: redis.Redis, namespace: str
) -> None:
    job_id = "0123456789abcdef0123456789abcdef"
    status_key = f"{namespace}:job:shop_{job_id}:status"
    redis_client.set(status_key, '{"status":3,"updated":1,"started":1,"result":null}', ex=86400)
    redis_client.rpush(f"{namespace}:failed", PHP)
    assert failures.requeue(0)
    raw = redis_client.get(status_key)
    assert raw is not None
    packet = json.loads(raw)
    assert packet["status"] == 1
    assert packet["result"] is None
    assert abs(packet["updated"] - time.time()) < 5
    assert redis_client.ttl(status_key) == -1


def test_requeue_drops_attempts_and_keeps_other_extra_fields(
    failures: Failures, redis_client: redis.Redis, namespace: str
) -> None:
    payload = {"class": "J", "args": [1], "attempts": 3, "trace_id": "t1"}
    redis_client.rpush(f"{namespace}:failed", failure_record(payload, "E", "m", [], "h:1:q", "q"))
    assert failures.requeue(0)
    assert queue_raw(redis_client, namespace, "q") == [b'{"class":"J","args":[1],"trace_id":"t1"}']


def test_requeue_refuses_what_it_cannot_requeue(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    # A record of a job whose payload itself was undecodable, and one without a queue.
    redis_client.rpush(
        f"{namespace}:failed",
        failure_record("garbage payload", "MalformedPayload", "m", [], "h:1:q", "q"),
        failure_record({"class": "J", "args": []}, "E", "m", [], "h:1:q", ""),
    )
    before = failed_raw(redis_client, namespace)
    for index, why in (
        (3, "not a failure record"),  # null
        (4, "not a failure record"),  # garbage
        (5, "must be a JSON object, got str"),  # payload is a string
        (6, 'names no "queue"'),
    ):
        with pytest.raises(
            MalformedPayload, match=f"failed job {index} cannot be retried: .*{why}"
        ):
            failures.requeue(index)
    assert not failures.requeue(99)  # no such index
    assert failed_raw(redis_client, namespace) == before
    assert redis_client.exists(f"{namespace}:queue:q") == 0
    assert redis_client.exists(f"{namespace}:queues") == 0
    assert failures.requeue_all() == 3  # Ruby, PHP, chrisboulton: the others hold no job


def test_requeue_never_touches_a_record_that_moved(
    failures: Failures,
    seeded: list[bytes],
    redis_client: redis.Redis,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_get = failures.get

    def get_then_someone_removes_the_head(index: int) -> Failure | None:
        found = real_get(index)
        redis_client.lpop(f"{namespace}:failed")  # resque-web's Remove, meanwhile
        return found

    monkeypatch.setattr(failures, "get", get_then_someone_removes_the_head)
    assert not failures.requeue(1)
    assert failed_raw(redis_client, namespace) == seeded[1:]
    assert redis_client.exists(f"{namespace}:queue:default") == 0


def test_requeue_all(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    ticks: list[int] = []
    assert failures.requeue_all(progress=ticks.append) == 3  # null and garbage are skipped
    assert sum(ticks) == 5
    assert [json.loads(r)["class"] for r in queue_raw(redis_client, namespace, "archive")] == [
        "Archive"
    ]
    assert [json.loads(r)["class"] for r in queue_raw(redis_client, namespace, "default")] == [
        "App\\Jobs\\Mail",
        "My_Job",
    ]
    raws = failed_raw(redis_client, namespace)
    for raw in raws[:3]:
        assert_recent_retried_at(json.loads(raw)["retried_at"])
    assert raws[3:] == [b"null", GARBAGE]
    assert redis_client.smembers(f"{namespace}:queues") == {b"archive", b"default"}


@pytest.mark.parametrize(
    ("filters", "retried", "queued"),
    [
        ({"queue": "default"}, [1, 2], {"default": 2}),
        ({"queue": "archive"}, [0], {"archive": 1}),
        ({"class_name": "My_Job"}, [2], {"default": 1}),
        ({"class_name": "App\\Jobs\\Mail", "queue": "default"}, [1], {"default": 1}),
        ({"exception": "RuntimeError"}, [0], {"archive": 1}),
        ({"exception": "RuntimeError", "queue": "default"}, [], {}),
        ({"queue": "nope"}, [], {}),
    ],
)
def test_requeue_all_with_filters(
    failures: Failures,
    seeded: list[bytes],
    redis_client: redis.Redis,
    namespace: str,
    filters: dict[str, Any],
    retried: list[int],
    queued: dict[str, int],
) -> None:
    assert failures.requeue_all(**filters) == len(retried)
    raws = failed_raw(redis_client, namespace)
    assert [i for i, raw in enumerate(raws[:3]) if b"retried_at" in raw] == retried
    for i in range(3):
        if i not in retried:
            assert raws[i] == seeded[i]
    assert {q: len(queue_raw(redis_client, namespace, q)) for q in queued} == queued
    all_queues = {
        m.decode() for m in cast("set[bytes]", redis_client.smembers(f"{namespace}:queues"))
    }
    assert all_queues == set(queued)


# ----------------------------------------------------------------------------- removing


def test_remove(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    assert failures.remove(1)
    assert failed_raw(redis_client, namespace) == [RUBY, CHRISBOULTON, b"null", GARBAGE]
    assert failures.remove(2)  # the null entry
    assert failures.remove(2)  # the garbage entry
    assert failed_raw(redis_client, namespace) == [RUBY, CHRISBOULTON]
    assert not failures.remove(2)
    assert failures.count() == 2


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ({}, []),
        ({"queue": "default"}, [0, 3, 4]),
        ({"class_name": "Archive"}, [1, 2, 3, 4]),
        ({"exception": "Resque_Job_DirtyExitException"}, [0, 1, 3, 4]),
        ({"queue": "default", "exception": "InvalidArgumentException"}, [0, 2, 3, 4]),
        ({"queue": "nope"}, [0, 1, 2, 3, 4]),
    ],
)
def test_remove_all_with_filters(
    failures: Failures,
    seeded: list[bytes],
    redis_client: redis.Redis,
    namespace: str,
    filters: dict[str, Any],
    kept: list[int],
) -> None:
    assert failures.remove_all(**filters) == 5 - len(kept)
    assert failed_raw(redis_client, namespace) == [seeded[i] for i in kept]


def test_clear(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    assert failures.clear() == 5
    assert redis_client.exists(f"{namespace}:failed") == 0
    assert failures.count() == 0
    assert failures.clear() == 0


def test_clear_retried(
    failures: Failures, seeded: list[bytes], redis_client: redis.Redis, namespace: str
) -> None:
    assert failures.clear_retried() == 0
    assert failures.requeue(0)
    assert failures.requeue(2)
    assert failures.clear_retried() == 2
    assert failed_raw(redis_client, namespace) == [PHP, b"null", GARBAGE]
    # The requeued jobs stay queued.
    assert len(queue_raw(redis_client, namespace, "archive")) == 1
    assert len(queue_raw(redis_client, namespace, "default")) == 1
