"""Delayed jobs on real Redis: resque-scheduler's exact layout (spec 1.5, 2.4, S8, S9),
moving due jobs (many schedulers at once, never twice), listing, cancelling,
"enqueue now", and the CLI. Time is an injected clock, never a sleep."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner

from pyresque import Events, Job, Resque, Status
from pyresque.cli.main import main
from pyresque.jobs.unique import Unique
from pyresque.protocol.delayed import item_json
from pyresque.protocol.payload import Payload
from pyresque.scheduling.scheduler import Scheduler

T0 = 1_800_000_000  # "now" for the injected clock


class DelayedMail(Job):
    def perform(self) -> None:
        pass


class Clock:
    """An injectable clock: ``now`` seconds since the epoch, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rq(redis_url: str, namespace: str, clock: Clock) -> Iterator[Resque]:
    client = Resque(redis_url, namespace=namespace, events=Events())
    client.delayed.clock = clock
    yield client
    client.redis.close()


@pytest.fixture
def ruby(redis_url: str, namespace: str, clock: Clock) -> Iterator[Resque]:
    """A client writing Ruby's payload dialect (byte-identical to Ruby's items)."""
    client = Resque(redis_url, namespace=namespace, events=Events(), dialect="ruby")
    client.delayed.clock = clock
    yield client
    client.redis.close()


def key(namespace: str, name: str) -> str:
    return f"{namespace}:{name}"


def queue(r: redis.Redis, namespace: str, name: str) -> list[bytes]:
    return cast("list[bytes]", r.lrange(key(namespace, f"queue:{name}"), 0, -1))


def ruby_delayed_push(r: redis.Redis, namespace: str, ts: int, item: bytes) -> None:
    """What Ruby resque-scheduler's ``delayed_push`` writes (three commands)."""
    r.rpush(key(namespace, f"delayed:{ts}"), item)
    r.sadd(key(namespace, "timestamps:") + item.decode(), f"delayed:{ts}")
    r.zadd(key(namespace, "delayed_queue_schedule"), {str(ts): ts})


def php_delayed_push(r: redis.Redis, namespace: str, ts: int, item: bytes) -> None:
    """What php-resque's ``Scheduler::delayedPush`` writes: no timestamps index."""
    r.rpush(key(namespace, f"delayed:{ts}"), item)
    r.zadd(key(namespace, "delayed_queue_schedule"), {str(ts): ts})


def nothing_delayed(r: redis.Redis, namespace: str) -> bool:
    return not list(r.scan_iter(match=key(namespace, "delayed*"))) and not list(
        r.scan_iter(match=key(namespace, "timestamps:*"))
    )


# --- resque-scheduler's layout, byte for byte ------------------------------------------


def test_ruby_dialect_item_is_byte_identical_to_ruby_enqueue_at(
    ruby: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """Ruby ``enqueue_at(ts, MyJob, 1, 2)`` on queue q writes exactly these keys (S9)."""
    ts = T0 + 60
    assert ruby.enqueue_at_to(ts, "q", "MyJob", 1, 2) is None  # Ruby dialect: no id
    item = b'{"class":"MyJob","args":[1,2],"queue":"q"}'
    assert redis_client.lrange(key(namespace, f"delayed:{ts}"), 0, -1) == [item]
    assert redis_client.smembers(key(namespace, "timestamps:") + item.decode()) == {
        f"delayed:{ts}".encode()
    }
    assert redis_client.zrange(
        key(namespace, "delayed_queue_schedule"), 0, -1, withscores=True
    ) == [(str(ts).encode(), float(ts))]


def test_items_are_encoded_as_ruby_json_gem_does(
    ruby: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """Compact, raw UTF-8, ``/`` unescaped, keys class,args,queue (spec 2.4): the
    ``timestamps:`` key name embeds these exact bytes."""
    ts = T0 + 5
    ruby.enqueue_at_to(ts, "mail/fr", "App::Mailer", {"to": "zoë@example.com", "path": "a/b"}, 1.5)
    item = (
        '{"class":"App::Mailer","args":[{"to":"zoë@example.com","path":"a/b"},1.5],'
        '"queue":"mail/fr"}'
    )
    assert redis_client.lrange(key(namespace, f"delayed:{ts}"), 0, -1) == [item.encode()]
    assert redis_client.exists(key(namespace, "timestamps:") + item) == 1


def test_ruby_scheduled_item_is_enqueued_in_ruby_shape_and_cleaned_up(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """S9: a Ruby item moved by pyresque: timestamps member removed, list and zset cleaned,
    ``{"class":"MyJob","args":[1,2]}`` (positional args kept) on the queue."""
    ts = T0 - 1
    ruby_delayed_push(redis_client, namespace, ts, b'{"class":"MyJob","args":[1,2],"queue":"q"}')
    assert rq.delayed.move_due(T0) == 1
    assert queue(redis_client, namespace, "q") == [b'{"class":"MyJob","args":[1,2]}']
    assert b"q" in redis_client.smembers(key(namespace, "queues"))
    assert nothing_delayed(redis_client, namespace)


def test_php_scheduled_item_is_enqueued_without_a_timestamps_index(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """S8: php-resque's items (no timestamps key; PHP escapes ``/`` as ``\\/``) become
    Ruby's ``{"class","args"}``, as Ruby's scheduler master would write them."""
    ts = T0
    php_delayed_push(
        redis_client, namespace, ts, b'{"class":"My_Job","args":[{"a":1}],"queue":"default"}'
    )
    php_delayed_push(
        redis_client,
        namespace,
        ts,
        b'{"class":"My_Job","args":[{"url":"http:\\/\\/x"}],"queue":"default"}',
    )
    assert redis_client.zscore(key(namespace, "delayed_queue_schedule"), str(ts)) == ts
    assert rq.delayed_count() == 2
    assert rq.delayed.move_due(T0) == 2
    assert queue(redis_client, namespace, "default") == [
        b'{"class":"My_Job","args":[{"a":1}]}',
        b'{"class":"My_Job","args":[{"url":"http://x"}]}',
    ]
    assert nothing_delayed(redis_client, namespace)


def ruby_scheduler_pass(r: redis.Redis, namespace: str, now: int) -> int:
    """Ruby resque-scheduler's move of due items (spec 1.5): LRANGE a batch, SREM each
    item's ``timestamps:`` entry, enqueue ``{"class","args"}``, LTRIM, clean up."""
    moved = 0
    due = cast(
        "list[bytes]", r.zrangebyscore(key(namespace, "delayed_queue_schedule"), "-inf", now)
    )
    for ts in due:
        list_key = key(namespace, f"delayed:{int(ts)}")
        for raw in cast("list[bytes]", r.lrange(list_key, 0, -1)):
            r.srem(key(namespace, "timestamps:") + raw.decode(), f"delayed:{int(ts)}")
            item = json.loads(raw)
            shaped = json.dumps(
                {"class": item["class"], "args": item["args"]}, separators=(",", ":")
            )
            r.rpush(key(namespace, f"queue:{item['queue']}"), shaped)
            r.ltrim(list_key, 1, -1)
            moved += 1
        if r.llen(list_key) == 0:
            r.delete(list_key)
            r.zrem(key(namespace, "delayed_queue_schedule"), ts)
    return moved


def test_pyresque_items_are_moved_by_ruby_resque_scheduler(
    rq: Resque, ruby: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """The other way round: items pyresque schedules (both dialects) are found and
    enqueued by Ruby's algorithm, and Ruby's ``delayed?`` index sees the Ruby-dialect one."""
    ruby.enqueue_at_to(T0 + 10, "q", "MyJob", 1, 2)
    job_id = rq.enqueue_at(T0 + 10, "q", DelayedMail, {"a": 1})
    ruby_item = '{"class":"MyJob","args":[1,2],"queue":"q"}'
    assert redis_client.exists(key(namespace, "timestamps:") + ruby_item) == 1
    assert ruby_scheduler_pass(redis_client, namespace, T0 + 10) == 2
    assert queue(redis_client, namespace, "q") == [
        b'{"class":"MyJob","args":[1,2]}',
        b'{"class":"DelayedMail","args":[{"a":1}]}',
    ]
    assert job_id is not None
    assert nothing_delayed(redis_client, namespace)


def test_a_pyresque_item_keeps_its_dialect_id_and_status(
    rq: Resque, redis_client: redis.Redis, namespace: str, clock: Clock
) -> None:
    job_id = rq.enqueue_in(30, "mail", DelayedMail, {"to": "x"}, track_status=True)
    assert job_id is not None
    assert rq.status(job_id) is Status.WAITING
    [delayed] = rq.delayed_jobs()
    assert (delayed.timestamp, delayed.queue, delayed.id) == (T0 + 30, "mail", job_id)
    clock.now = T0 + 29.9
    assert rq.delayed.move_due() == 0
    clock.now = T0 + 30
    assert rq.delayed.move_due() == 1
    [raw] = queue(redis_client, namespace, "mail")
    payload = json.loads(raw)
    assert list(payload) == ["class", "args", "id", "prefix", "queue_time"]
    assert payload["id"] == job_id
    assert payload["queue_time"] == T0 + 30  # the time it was queued
    assert rq.status(job_id) is Status.WAITING


def test_a_time_not_in_the_future_enqueues_at_once(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue_at(T0, "q", DelayedMail, 1)
    rq.enqueue_at(T0 - 100, "q", DelayedMail, 2)
    assert len(queue(redis_client, namespace, "q")) == 2
    assert rq.delayed_count() == 0


def test_a_fraction_of_a_second_rounds_up_never_early(rq: Resque) -> None:
    rq.enqueue_at(T0 + 0.2, "q", DelayedMail)
    assert [j.timestamp for j in rq.delayed_jobs()] == [T0 + 1]


def test_at_front_items_go_to_the_head_of_their_queue(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue("q", DelayedMail, "queued")
    entry = item_json(Payload("DelayedMail", ["early"]), "q", at_front=True)
    rq.delayed.schedule(T0, entry)
    rq.delayed.move_due(T0)
    assert [json.loads(i)["args"] for i in queue(redis_client, namespace, "q")] == [
        ["early"],
        ["queued"],
    ]


def test_items_that_are_not_jobs_go_to_failed_and_do_not_block(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    php_delayed_push(redis_client, namespace, T0, b"not json")
    php_delayed_push(redis_client, namespace, T0, b'{"class":"X","args":[]}')  # no queue
    php_delayed_push(redis_client, namespace, T0, b'{"class":"X","args":[],"queue":"q"}')
    rq.delayed.move_due(T0)
    assert queue(redis_client, namespace, "q") == [b'{"class":"X","args":[]}']
    failures = rq.failures.list()
    assert [f.exception for f in failures] == ["pyresque.MalformedPayload"] * 2
    assert "not valid JSON" in failures[0].error
    assert 'no "queue"' in failures[1].error
    assert failures[0].payload == "not json"
    assert nothing_delayed(redis_client, namespace)


# --- many schedulers ---------------------------------------------------------------------


def test_concurrent_schedulers_move_each_item_exactly_once(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    producer = Resque(redis_url, namespace=namespace, events=Events())
    producer.delayed.clock = Clock()
    ids = {producer.enqueue_at(T0 + 1 + n % 3, "q", DelayedMail, n) for n in range(300)}
    # Ruby and PHP items too, duplicates included (the same bytes twice at one second).
    for _ in range(2):
        ruby_delayed_push(redis_client, namespace, T0 + 2, b'{"class":"R","args":[1],"queue":"q"}')
    start = threading.Barrier(4)
    moved: list[int] = []

    def scheduler() -> None:
        client = Resque(redis_url, namespace=namespace, events=Events())
        start.wait()
        total = 0
        for _ in range(20):
            total += client.delayed.move_due(T0 + 5)
        moved.append(total)
        client.redis.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(moved) == 302
    items = [json.loads(i) for i in queue(redis_client, namespace, "q")]
    assert len(items) == 302
    assert {i.get("id") for i in items if i["class"] == "DelayedMail"} == ids
    assert sum(1 for i in items if i["class"] == "R") == 2
    assert nothing_delayed(redis_client, namespace)


def test_a_running_scheduler_moves_a_job_within_a_second_of_its_time(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    scheduler = Scheduler(Resque(redis_url, namespace=namespace, events=Events()))
    scheduler.start()
    try:
        due = int(time.time()) + 1
        rq.enqueue_at(due, "q", DelayedMail)
        deadline = time.monotonic() + 5
        while not redis_client.llen(key(namespace, "queue:q")):
            assert time.monotonic() < deadline, "the job was not moved"
            time.sleep(0.01)
        assert due <= time.time() < due + 1.0
    finally:
        scheduler.stop()


# --- listing, cancelling, enqueue now ------------------------------------------------------


def schedule_three(rq: Resque) -> list[str]:
    ids = [
        rq.enqueue_at(T0 + 20, "q", DelayedMail, {"n": 1}),
        rq.enqueue_at(T0 + 10, "q", DelayedMail, {"n": 2}),
        rq.enqueue_at(T0 + 10, "other", "OtherJob", {"n": 1}),
    ]
    return [i for i in ids if i]


def test_delayed_jobs_are_listed_soonest_first(rq: Resque) -> None:
    schedule_three(rq)
    listed = [
        (j.timestamp, j.queue, j.class_name, j.payload.args if j.payload else None)
        for j in rq.delayed_jobs()
    ]
    assert listed == [
        (T0 + 10, "q", "DelayedMail", [{"n": 2}]),
        (T0 + 10, "other", "OtherJob", [{"n": 1}]),
        (T0 + 20, "q", "DelayedMail", [{"n": 1}]),
    ]
    assert rq.delayed_count() == 3
    assert [j.class_name for j in rq.delayed_jobs(offset=1, limit=1)] == ["OtherJob"]


def test_cancel_by_id_by_class_and_by_class_and_args(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    first, _, third = schedule_three(rq)
    assert rq.remove_delayed(job_id=third) == 1
    assert rq.remove_delayed(DelayedMail, {"n": 1}) == 1
    assert [j.id for j in rq.delayed_jobs()] == [_]
    assert rq.remove_delayed(DelayedMail) == 1
    assert rq.remove_delayed(job_id=first) == 0
    assert nothing_delayed(redis_client, namespace)
    assert not queue(redis_client, namespace, "q")


def test_cancelling_a_ruby_item_clears_its_timestamps_index(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    ruby_delayed_push(
        redis_client, namespace, T0 + 9, b'{"class":"MyJob","args":[1,2],"queue":"q"}'
    )
    assert rq.remove_delayed("MyJob", 1, 2) == 1
    assert nothing_delayed(redis_client, namespace)


def test_enqueue_now(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    first, second, _ = schedule_three(rq)
    assert rq.enqueue_delayed_now(job_id=first) == 1
    assert rq.enqueue_delayed_now("OtherJob") == 1
    assert [json.loads(i)["id"] for i in queue(redis_client, namespace, "q")] == [first]
    assert len(queue(redis_client, namespace, "other")) == 1
    assert [j.id for j in rq.delayed_jobs()] == [second]


def test_cancel_releases_a_unique_lock(rq: Resque) -> None:
    once = Unique(until="started")
    first = rq.enqueue_at(T0 + 10, "q", DelayedMail, {"n": 1}, unique=once)
    assert first is not None
    assert rq.enqueue_at(T0 + 20, "q", DelayedMail, {"n": 1}, unique=once) is None
    assert rq.remove_delayed(job_id=first) == 1
    assert rq.enqueue_at(T0 + 20, "q", DelayedMail, {"n": 1}, unique=once) is not None


# --- CLI -----------------------------------------------------------------------------------


def cli(redis_url: str, namespace: str, *args: str) -> Any:
    result = CliRunner().invoke(
        main, [*args, "--redis-url", redis_url, "--namespace", namespace], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_lists_cancels_and_enqueues_now(
    rq: Resque, redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    first, second, _ = schedule_three(rq)
    listed = json.loads(cli(redis_url, namespace, "delayed", "list", "--json"))
    assert [j["payload"]["class"] for j in listed] == ["DelayedMail", "OtherJob", "DelayedMail"]
    assert [listed[0]["payload"]["id"], listed[2]["payload"]["id"]] == [second, first]
    table = cli(redis_url, namespace, "delayed", "list")
    assert "3 delayed job(s)" in table
    assert "OtherJob" in table
    assert "cancelled: 1" in cli(redis_url, namespace, "delayed", "cancel", "--id", first)
    assert "enqueued: 1" in cli(
        redis_url,
        namespace,
        "delayed",
        "enqueue-now",
        "--class",
        "DelayedMail",
        "--args",
        '[{"n":2}]',
    )
    assert len(queue(redis_client, namespace, "q")) == 1
    assert rq.delayed_count() == 1
