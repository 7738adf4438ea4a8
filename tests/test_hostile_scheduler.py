"""Hostile data in the scheduler's keys (issue 11, section 1): delayed items, schedule
entries and keys of any shape never stop it. What cannot be enqueued goes to ``failed``
as a ``MalformedPayload`` naming the problem, exactly once, and everything else moves.
On real Redis, with the real ``Scheduler.tick`` and real scheduler processes."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, wait_for
from hostile_gen import JSON, any_json
from pyresque import Events, Resque
from pyresque.protocol.delayed import item_json
from pyresque.protocol.payload import Payload
from pyresque.scheduling.cron import Cron, Schedule
from pyresque.scheduling.cron import status as cron_status
from pyresque.scheduling.scheduler import Scheduler

T0 = 1_800_000_000
GOOD_BEFORE = b'{"class":"Good","args":[1],"queue":"q"}'
GOOD_AFTER = b'{"class":"Good","args":[2],"queue":"q"}'


def key(namespace: str, name: str | bytes) -> bytes:
    return namespace.encode() + b":" + (name.encode() if isinstance(name, str) else name)


def delayed_push(
    r: redis.Redis, namespace: str, member: bytes, score: float, *items: bytes
) -> None:
    """php-resque's ``delayedPush``, with any member and score."""
    if items:
        r.rpush(key(namespace, b"delayed:" + member), *items)
    r.zadd(key(namespace, "delayed_queue_schedule"), {member: score})


def queued(r: redis.Redis, namespace: str, name: str = "q") -> list[Any]:
    return [
        json.loads(i) for i in cast("list[bytes]", r.lrange(key(namespace, f"queue:{name}"), 0, -1))
    ]


def failed(r: redis.Redis, namespace: str) -> list[dict[str, Any]]:
    return [json.loads(i) for i in cast("list[bytes]", r.lrange(key(namespace, "failed"), 0, -1))]


def schedule_of(r: redis.Redis, namespace: str) -> list[bytes]:
    return cast("list[bytes]", r.zrange(key(namespace, "delayed_queue_schedule"), 0, -1))


DEEP = b'{"class":"X","args":' + b"[" * 5000 + b"]" * 5000 + b',"queue":"q"}'

BAD_ITEMS = {
    "not JSON": (b"not json", "not valid JSON"),
    "invalid UTF-8": (b'{"class":"X","args":["\xff\xfe"],"queue":"q"}', "not valid UTF-8"),
    "lone surrogate": (b'{"class":"X","args":["\\ud800"],"queue":"q"}', "surrogate"),
    "NaN": (b'{"class":"X","args":[NaN],"queue":"q"}', "NaN is not a JSON number"),
    "1e400": (b'{"class":"X","args":[1e400],"queue":"q"}', "too large for a double"),
    "deep nesting": (DEEP, "nested deeper than 100 levels"),
    "huge integer": (b'{"class":"X","args":[' + b"9" * 5000 + b'],"queue":"q"}', "not usable JSON"),
    "a list": (b'[1,2,"q"]', "must be a JSON object, got list"),
    "a string": (b'"q"', "must be a JSON object, got str"),
    "no class": (b'{"args":[],"queue":"q"}', '"class"'),
    "class not a string": (b'{"class":{"a":1},"args":[],"queue":"q"}', '"class" must be'),
    "args not a list": (b'{"class":"X","args":"a","queue":"q"}', '"args" must be a JSON list'),
    "no queue": (b'{"class":"X","args":[]}', 'names no "queue"'),
    "queue not a string": (b'{"class":"X","args":[],"queue":["q"]}', '"queue" must be'),
    "empty queue": (b'{"class":"X","args":[],"queue":""}', '"queue" must be'),
}


@pytest.mark.parametrize("name", list(BAD_ITEMS))
def test_a_bad_item_goes_to_failed_once_and_the_items_around_it_move(
    name: str, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    item, message = BAD_ITEMS[name]
    delayed_push(redis_client, namespace, str(T0).encode(), T0, GOOD_BEFORE, item, GOOD_AFTER)
    scheduler = Scheduler(rq, clock=lambda: T0 + 1)
    assert scheduler.tick() == 3  # each item taken off the delayed queue counts
    assert [i["args"] for i in queued(redis_client, namespace)] == [[1], [2]]
    [record] = failed(redis_client, namespace)
    assert record["exception"] == "pyresque.MalformedPayload"
    assert record["error"].startswith("delayed item cannot be enqueued: ")
    assert message in record["error"]
    assert not schedule_of(redis_client, namespace)
    assert not redis_client.exists(key(namespace, f"delayed:{T0}"))
    assert scheduler.tick() == 0
    assert len(failed(redis_client, namespace)) == 1


def test_the_raw_bytes_of_an_undecodable_item_are_kept(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    delayed_push(redis_client, namespace, str(T0).encode(), T0, b"\xffnot json\x00")
    rq.delayed.move_due(T0)
    [record] = failed(redis_client, namespace)
    assert record["payload"] == "\\xffnot json\x00"


@pytest.mark.parametrize(
    ("member", "score"),
    [
        (b"abc", T0),
        (b"1800000000.5", T0),
        (b"-5", -5),
        (b"9" * 5000, T0),
        (b"\xff\xfe", T0),
        (b"", T0),
        (b"-inf", float("-inf")),
    ],
)
def test_items_under_any_schedule_entry_move_and_the_entry_goes(
    member: bytes, score: float, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    delayed_push(redis_client, namespace, member, score, GOOD_BEFORE)
    delayed_push(redis_client, namespace, str(T0).encode(), T0, GOOD_AFTER)
    assert rq.delayed.move_due(T0) == 2
    assert sorted(i["args"] for i in queued(redis_client, namespace)) == [[1], [2]]
    assert not schedule_of(redis_client, namespace)
    assert not failed(redis_client, namespace)
    assert rq.delayed.count() == 0


def test_a_schedule_entry_far_in_the_future_waits(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    delayed_push(redis_client, namespace, b"9" * 40, 1e40, GOOD_BEFORE)
    delayed_push(redis_client, namespace, b"inf", float("inf"), GOOD_BEFORE)
    assert rq.delayed.move_due(T0) == 0
    assert rq.delayed.count() == 2
    assert len(rq.delayed_jobs()) == 2


@pytest.mark.parametrize("kind", ["string", "hash", "set", "zset"])
def test_a_delayed_key_that_is_not_a_list_is_unscheduled_once_and_left_alone(
    kind: str, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    bad = key(namespace, f"delayed:{T0}")
    if kind == "string":
        redis_client.set(bad, b"\xffgarbage")
    elif kind == "hash":
        redis_client.hset(bad, "a", "b")
    elif kind == "set":
        redis_client.sadd(bad, "a")
    else:
        redis_client.zadd(bad, {"a": 1})
    delayed_push(redis_client, namespace, str(T0).encode(), T0)
    delayed_push(redis_client, namespace, str(T0 + 1).encode(), T0 + 1, GOOD_AFTER)
    assert rq.delayed.count() == 1
    listed = rq.delayed_jobs()
    assert [j.problem != "" for j in listed] == [True, False]
    assert rq.delayed.move_due(T0 + 1) == 1  # the bad key is not an item
    assert rq.delayed.move_due(T0 + 1) == 0
    assert [i["args"] for i in queued(redis_client, namespace)] == [[2]]
    [record] = failed(redis_client, namespace)
    assert record["exception"] == "pyresque.MalformedPayload"
    assert f"delayed:{T0} is a {kind}, not a list" in record["error"]
    assert record["payload"] == ("\\xffgarbage" if kind == "string" else "")
    assert redis_client.type(bad) == kind.encode()
    assert not schedule_of(redis_client, namespace)


def test_an_item_whose_queue_key_is_not_a_list_goes_to_failed(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    redis_client.set(key(namespace, "queue:blocked"), "x")
    item = b'{"class":"X","args":[],"queue":"blocked"}'
    delayed_push(redis_client, namespace, str(T0).encode(), T0, GOOD_BEFORE, item, GOOD_AFTER)
    assert rq.delayed.move_due(T0) == 3
    assert [i["args"] for i in queued(redis_client, namespace)] == [[1], [2]]
    [record] = failed(redis_client, namespace)
    assert f"{namespace}:queue:blocked is not a list" in record["error"]
    assert record["queue"] == "blocked"
    assert not schedule_of(redis_client, namespace)


def test_wrong_typed_index_and_lock_keys_do_not_lose_the_item(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    item = b'{"class":"X","args":[],"queue":"q","unique":{"key":"k","until":"queued","token":"t"}}'
    redis_client.rpush(key(namespace, b"timestamps:" + item), "x")  # a list, not a set
    redis_client.rpush(key(namespace, "pyresque:unique:k"), "x")  # a list, not a string
    delayed_push(redis_client, namespace, str(T0).encode(), T0, item)
    assert rq.delayed.move_due(T0) == 1
    assert [i["class"] for i in queued(redis_client, namespace)] == ["X"]
    assert not schedule_of(redis_client, namespace)


def test_when_failed_is_not_a_list_the_pass_stops_instead_of_spinning(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    redis_client.set(key(namespace, "failed"), "x")
    delayed_push(redis_client, namespace, str(T0).encode(), T0, b"not json")
    assert rq.delayed.move_due(T0) == 0
    assert redis_client.llen(key(namespace, f"delayed:{T0}")) == 1


# --- real scheduler processes ------------------------------------------------------------


@pytest.mark.parametrize("how", ["scheduler", "worker --with-scheduler"])
def test_a_real_scheduler_goes_on_past_bad_data_and_cron_keeps_firing(
    how: str, procs: Procs, redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    now = int(time.time())
    bad = [BAD_ITEMS[n][0] for n in ("not JSON", "NaN", "deep nesting", "invalid UTF-8")]
    delayed_push(redis_client, namespace, str(now - 9).encode(), now - 9, GOOD_BEFORE, *bad)
    redis_client.set(key(namespace, f"delayed:{now - 8}"), "not a list")
    delayed_push(redis_client, namespace, str(now - 8).encode(), now - 8)
    delayed_push(redis_client, namespace, b"not-a-number", now - 7, GOOD_AFTER)
    schedule = tmp_path / "schedule.yml"
    schedule.write_text("tick:\n  every: 1s\n  class: CronTask\n  queue: cron\n")
    if how == "scheduler":
        args = ["scheduler", "--schedule", str(schedule), "--interval", "0.1"]
        proc = procs.cli(
            [*args, "--redis-url", procs.redis_url, "--namespace", namespace], namespace
        )
    else:
        proc = procs.worker(namespace, "idle", "--with-scheduler", "--schedule", str(schedule))
    wait_for(lambda: len(failed(redis_client, namespace)) == 5, 60, "five failure records")
    assert {r["exception"] for r in failed(redis_client, namespace)} == {
        "pyresque.MalformedPayload"
    }
    wait_for(lambda: len(queued(redis_client, namespace)) == 2, 60, "the good items moved")
    # Still moving: an item due after the bad ones, and cron ticks.
    later = int(time.time()) + 1
    delayed_push(redis_client, namespace, str(later).encode(), later, GOOD_BEFORE)
    wait_for(lambda: len(queued(redis_client, namespace)) == 3, 60, "a later item moved")
    ticks = len(queued(redis_client, namespace, "cron"))
    wait_for(lambda: len(queued(redis_client, namespace, "cron")) >= ticks + 2, 60, "cron ticks")
    assert proc.running()
    assert "Traceback" not in proc.log()
    assert not schedule_of(redis_client, namespace)
    assert len(failed(redis_client, namespace)) == 5


# --- property: any delayed data --------------------------------------------------------

JOBISH = st.fixed_dictionaries(
    {"class": st.sampled_from(["Job", ""]) | JSON, "args": st.just([]) | JSON},
    optional={
        "queue": st.sampled_from(["q1", "q2"]) | JSON,
        "id": JSON,
        "queue_time": JSON | st.just(10**400),
        "at_front": JSON,
        "unique": JSON,
        "attempts": JSON,
    },
)


ITEMS = st.one_of(
    st.builds(
        lambda args, queue: any_json({"class": "Job", "args": args, "queue": queue}),
        st.lists(JSON, max_size=2),
        st.sampled_from(["q1", "q2"]),
    ),
    st.binary(max_size=30),
    JSON.map(any_json),
    JOBISH.map(any_json),
    st.integers(95, 105).map(
        lambda n: b'{"class":"X","queue":"q1","args":' + b"[" * n + b"]" * n + b"}"
    ),
)
SLOTS = st.sampled_from(
    [
        (str(T0).encode(), T0),
        (str(T0 - 60).encode(), T0 - 60),
        (b"abc", T0),
        (b"-1", -1),
        (b"\xff", T0),
        (b"", float("-inf")),
        (b"1e3", 1000),
    ]
)


def namespace_queues(r: redis.Redis, prefix: bytes) -> int:
    """How many items wait on the namespace's queues (every name in its ``queues`` set)."""
    names = cast("set[bytes]", r.smembers(prefix + b"queues"))
    return sum(int(r.llen(prefix + b"queue:" + name)) for name in names)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.lists(st.tuples(SLOTS, ITEMS), min_size=1, max_size=8))
def test_scheduler_property_every_item_moves_once_or_fails_none_is_lost(
    redis_url: str, redis_client: redis.Redis, namespace: str, data: list[tuple[Any, bytes]]
) -> None:
    sub = f"{namespace}:{uuid.uuid4().hex[:8]}"  # cleaned up with the test's namespace
    prefix = sub.encode() + b":"
    for (member, score), item in data:
        delayed_push(redis_client, sub, member, score, item)
    # A job the bad data must not hold up, due last.
    delayed_push(redis_client, sub, str(T0).encode(), T0, GOOD_AFTER)
    client = Resque(redis_url, namespace=sub, events=Events())
    try:
        scheduler = Scheduler(client, clock=lambda: T0)
        moved = scheduler.tick()
        assert scheduler.tick() == 0
    finally:
        client.redis.close()
    failures = int(redis_client.llen(prefix + b"failed"))
    assert moved == len(data) + 1
    assert namespace_queues(redis_client, prefix) + failures == len(data) + 1
    assert GOOD_AFTER.replace(b',"queue":"q"', b"") in cast(
        "list[bytes]", redis_client.lrange(prefix + b"queue:q", 0, -1)
    )
    assert not redis_client.zcard(prefix + b"delayed_queue_schedule")
    for record in cast("list[bytes]", redis_client.lrange(prefix + b"failed", 0, -1)):
        assert json.loads(record)["exception"] == "pyresque.MalformedPayload"
    event(f"{failures} failed")


# --- cron state, definitions and lease ---------------------------------------------------

EVERY = [Schedule("a", "CronJob", "cron", every=1), Schedule("b", "CronJob", "cron", every=1)]


def cron_fired(r: redis.Redis, namespace: str) -> Counter[str]:
    items = cast("list[bytes]", r.lrange(key(namespace, "queue:cron"), 0, -1))
    return Counter(json.loads(i)["cron"]["schedule"] for i in items)


@pytest.mark.parametrize(
    "value", [b"abc", b"-5", b"1e9", b"9" * 30, str(T0 + 10**7).encode(), b"\xff", b""]
)
def test_an_unreadable_last_tick_is_logged_once_and_the_schedule_restarts(
    value: bytes,
    rq: Resque,
    redis_client: redis.Redis,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cron = Cron(rq, EVERY, "s1")
    cron.run_once(T0)
    redis_client.hset(key(namespace, "pyresque:cron:ticks"), "a", value)
    for n in range(1, 4):
        cron.run_once(T0 + n)
    assert cron_fired(redis_client, namespace) == {"a": 2, "b": 3}
    assert redis_client.hget(key(namespace, "pyresque:cron:ticks"), "a") == str(T0 + 3).encode()
    errors = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(errors) == 1
    assert "a's last tick" in errors[0].getMessage()


def test_a_ticks_hash_of_the_wrong_type_is_replaced_and_cron_goes_on(
    rq: Resque, redis_client: redis.Redis, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.set(key(namespace, "pyresque:cron:ticks"), "x")
    delayed_push(redis_client, namespace, str(T0).encode(), T0, GOOD_BEFORE)
    scheduler = Scheduler(rq, EVERY, clock=lambda: T0)
    assert scheduler.tick() == 1  # the delayed job; cron starts again from now
    assert scheduler.tick(T0 + 1) == 2
    assert scheduler.tick(T0 + 2) == 2
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1


@pytest.mark.parametrize("name", ["pyresque:cron:state", "pyresque:cron:paused"])
def test_a_state_hash_or_paused_set_of_the_wrong_type_stops_no_tick(
    name: str, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    redis_client.rpush(key(namespace, name), "x")
    cron = Cron(rq, EVERY, "s1")
    cron.run_once(T0)
    assert cron.run_once(T0 + 1) == 2
    assert cron.run_once(T0 + 2) == 2
    assert cron_fired(redis_client, namespace) == {"a": 2, "b": 2}


@pytest.mark.parametrize("kind", ["hash", "string without a TTL"])
def test_a_leader_key_no_scheduler_wrote_does_not_keep_cron_out(
    kind: str, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    leader = key(namespace, "pyresque:cron:leader")
    if kind == "hash":
        redis_client.hset(leader, "a", "b")
    else:
        redis_client.set(leader, "someone:1:x")
    cron = Cron(rq, EVERY, "s1")
    cron.run_once(T0)
    assert cron.leading
    assert cron.run_once(T0 + 1) == 2
    assert redis_client.get(leader) == b"s1"
    assert redis_client.pttl(leader) > 0


def test_a_live_leader_keeps_the_lead(rq: Resque, redis_client: redis.Redis) -> None:
    first, second = Cron(rq, EVERY, "s1"), Cron(rq, EVERY, "s2")
    first.run_once(T0)
    second.run_once(T0)
    assert first.leading
    assert not second.leading


CORRUPT = [
    b"not json",
    b"[1,2]",
    b"\xff",
    b"[" * 200 + b"]" * 200,
    b'{"last_run":NaN}',
    b'{"job_id":{"a":1},"last_run":"x","next_run":1e300,"outcome":[1]}',
]


@pytest.mark.parametrize("value", CORRUPT)
def test_cron_status_shows_unreadable_state_and_definitions(
    value: bytes, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    cron = Cron(rq, EVERY, "s1")
    cron.run_once(T0)
    cron.run_once(T0 + 1)
    redis_client.hset(key(namespace, "pyresque:cron:state"), "a", value)
    redis_client.hset(key(namespace, "pyresque:cron:schedules"), "c", value)
    redis_client.hset(key(namespace, "pyresque:cron:schedules"), b"\xff", b'{"every":"x"}')
    found = {s.name: s for s in cron_status(rq)}
    assert set(found) == {"a", "b", "c", "\\xff"}
    assert found["b"].last_run == T0 + 1
    assert found["b"].definition["job"] == "CronJob"
    assert found["c"].definition == {}
    assert found["c"].outcome.startswith("unreadable definition")
    assert found["\\xff"].outcome.startswith("unreadable definition")
    assert found["a"].job_id is None
    assert found["a"].last_run is None or value.startswith(b"{")
    assert found["a"].outcome.startswith("unreadable state") or value.startswith(b"{")
    assert cron.run_once(T0 + 2) == 2  # firing does not read the state


#: Definitions that are JSON objects but not what a leader publishes (no cron parser
#: reads them: the admin layer checks their shape), and why each is refused.
NOT_SCHEDULES = {
    "both": {"name": "x", "job": "J", "queue": "q", "cron": "* * * * *", "every": 5},
    "neither": {"name": "x", "job": "J", "queue": "q"},
    "no queue": {"name": "x", "job": "J", "every": 5},
    "fields": {"name": "x", "job": "J", "queue": "q", "cron": "* * *"},
    "type": {"name": "x", "job": "J", "queue": "q", "every": "5"},
    "bool": {"name": "x", "job": "J", "queue": "q", "every": True},
    "misfire": {"name": "x", "job": "J", "queue": "q", "every": 5, "misfire": "later"},
    "unknown": {"name": "x", "job": "J", "queue": "q", "every": 5, "color": "red"},
}


@pytest.mark.parametrize("name", sorted(NOT_SCHEDULES))
def test_cron_status_refuses_a_definition_of_another_shape(
    name: str, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    published = Schedule("ok", "CronJob", "cron", cron="*/5 * * * * Europe/Berlin", args=[1])
    redis_client.hset(
        key(namespace, "pyresque:cron:schedules"), "ok", json.dumps(published.to_dict())
    )
    redis_client.hset(
        key(namespace, "pyresque:cron:schedules"), name, json.dumps(NOT_SCHEDULES[name])
    )
    found = {s.name: s for s in cron_status(rq)}
    assert found["ok"].definition == published.to_dict()
    assert found["ok"].outcome == "not run yet"
    assert found[name].definition == {}
    assert found[name].outcome.startswith("unreadable definition")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tick=st.binary(max_size=20) | st.integers().map(lambda n: str(n).encode()),
    state=st.binary(max_size=30) | JSON.map(any_json),
    definition=st.binary(max_size=30) | JSON.map(any_json) | JOBISH.map(any_json),
)
def test_cron_property_no_recorded_value_stops_the_other_schedules(
    redis_url: str,
    redis_client: redis.Redis,
    namespace: str,
    tick: bytes,
    state: bytes,
    definition: bytes,
) -> None:
    sub = f"{namespace}:{uuid.uuid4().hex[:8]}"
    client = Resque(redis_url, namespace=sub, events=Events())
    try:
        cron = Cron(client, EVERY, "s1")
        cron.run_once(T0)
        redis_client.hset(key(sub, "pyresque:cron:ticks"), "a", tick)
        redis_client.hset(key(sub, "pyresque:cron:state"), "a", state)
        redis_client.hset(key(sub, "pyresque:cron:schedules"), "a", definition)
        cron.run_once(T0 + 1)
        cron.run_once(T0 + 2)
        assert cron_fired(redis_client, sub)["b"] == 2
        assert len(cron_status(client)) == 2
    finally:
        client.redis.close()


# --- the limits' sweep ---------------------------------------------------------------------


def test_unreadable_limit_entries_do_not_stop_the_sweep(
    rq: Resque, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = rq.keys
    for name, size in ((b"\xff", b"2"), (b"bad-size", b"lots"), (b"good", b"2")):
        redis_client.hset(keys.limits_waiting, name, size)
    for limit in ("bad-size", "good"):
        for n in range(3):
            item = item_json(Payload("Limited", [limit, n]), "lim", at_front=True)
            redis_client.rpush(keys.concurrency_waiting(limit), item)
    scheduler = Scheduler(rq, clock=lambda: T0)
    scheduler.tick()
    woken = [tuple(p["args"]) for p in rq.peek("lim", 0, 10)]
    assert sorted(woken) == [("bad-size", 0), ("good", 0), ("good", 1)]
    assert set(redis_client.hkeys(keys.limits_waiting)) == {b"bad-size", b"good"}
    scheduler.tick()
    assert len([r for r in caplog.records if "unreadable size" in r.getMessage()]) == 1
