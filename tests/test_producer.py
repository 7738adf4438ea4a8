"""Producer validation (producer.py): a job no worker could take raises at the call,
says what to change, and writes nothing; every valid job round-trips through the
workers' decoding policy (strict_json)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyresque import Enqueued, Events, Job, Resque, Unique
from pyresque.client.checks import MAX_PAYLOAD_DEPTH, MAX_QUEUE_NAME
from pyresque.protocol import strict_json
from pyresque.worker.queue_list import QueueList


class Tagged(Job):
    unique = Unique()


def snapshot(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every key of the namespace with a dump of its value: any write shows."""
    return {k: client.dump(k) for k in client.scan_iter(match=f"{namespace}:*", count=1000)}


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    return Resque(redis_url, namespace=namespace, events=Events())


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BAD_QUEUES = {
    "": "queue name is required",
    "a,b": "separates queue names",
    "mail*": "glob pattern",
    "q?": "glob pattern",
    "{a}": "glob pattern",
    "!mail": "exclusion",
    "my queue": "whitespace",
    "tab\tq": "whitespace",
    "bell\x07": "unprintable",
    "esc\x1b": "unprintable",
    "bidi\u202eq": "unprintable",
    "lone\ud800": "unprintable",
    "q" * (MAX_QUEUE_NAME + 1): f"at most {MAX_QUEUE_NAME}",
}


@pytest.mark.parametrize("queue", list(BAD_QUEUES))
def test_queue_names_workers_cannot_name_are_refused_by_every_producer_call(
    rq: Resque, redis_client: redis.Redis, namespace: str, queue: str
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "enqueue": lambda: rq.enqueue(queue, "Job", 1),
        "enqueue_to": lambda: rq.enqueue_to(queue, "Job", 1),
        "enqueue_many": lambda: rq.enqueue_many([Enqueued(queue, "Job", [1])]),
        "push": lambda: rq.push(queue, {"class": "Job", "args": []}),
        "enqueue_in": lambda: rq.enqueue_in(60, queue, "Job", 1),
        "enqueue_at_to": lambda: rq.enqueue_at_to(0, queue, "Job", 1),
        "unique": lambda: rq.enqueue_to(queue, Tagged, 1),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=BAD_QUEUES[queue]):
            call()
        assert snapshot(redis_client, namespace) == {}, name


def test_a_queue_name_that_is_not_a_string_is_a_type_error(rq: Resque) -> None:
    with pytest.raises(TypeError, match="queue name must be a str, got int"):
        rq.enqueue(7, "Job", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("job", "error", "message"),
    [
        (None, TypeError, "Job subclass, an @job function or a class name"),
        (42, TypeError, "Job subclass"),
        ("", ValueError, "class name is empty"),
        ("   ", ValueError, "class name is empty"),
        (" Padded", ValueError, "whitespace at its ends or unprintable"),
        ("Bell\x07", ValueError, "whitespace at its ends or unprintable"),
        ("Bad\udc80", ValueError, "whitespace at its ends or unprintable"),
    ],
)
def test_a_missing_or_unusable_job_class_is_refused(
    rq: Resque,
    redis_client: redis.Redis,
    namespace: str,
    job: Any,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        rq.enqueue("default", job, 1)
    with pytest.raises(error, match=message):
        rq.push("default", {"class": job, "args": []})
    assert snapshot(redis_client, namespace) == {}


@pytest.mark.parametrize("args", [{"a": 1}, "text", 5, None, {1, 2}])
def test_enqueued_args_of_the_wrong_shape_say_how_to_pass_them(
    rq: Resque, redis_client: redis.Redis, namespace: str, args: Any
) -> None:
    with pytest.raises(TypeError, match=r"wrap a single value as \[value\]"):
        rq.enqueue_many([Enqueued("default", "Job", args)])
    with pytest.raises(TypeError, match="args must be a list"):
        rq.push("default", {"class": "Job", "args": args})
    assert snapshot(redis_client, namespace) == {}


def test_a_tuple_of_args_is_taken_as_the_list(rq: Resque, redis_client: redis.Redis) -> None:
    rq.enqueue_many([Enqueued("default", "Job", (1, "x"))])  # type: ignore[arg-type]
    [raw] = redis_client.lrange(f"{rq.namespace}:queue:default", 0, -1)
    assert strict_json.loads(raw)["args"] == [1, "x"]


@pytest.mark.parametrize(
    "args",
    [
        ["lone \ud800 surrogate"],
        [{"key \udfff": 1}],
        [deep(MAX_PAYLOAD_DEPTH)],
        [math.nan],
        [math.inf],
        [b"bytes"],
    ],
    ids=["surrogate-value", "surrogate-key", "too-deep", "nan", "infinity", "bytes"],
)
def test_arguments_no_worker_could_read_are_refused_everywhere(
    rq: Resque, redis_client: redis.Redis, namespace: str, args: list[Any]
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "enqueue_to": lambda: rq.enqueue_to("default", "Job", *args),
        "unique": lambda: rq.enqueue_to("default", Tagged, *args),
        "push": lambda: rq.push("default", {"class": "Job", "args": args}),
        "enqueue_in_to": lambda: rq.enqueue_in_to(timedelta(minutes=1), "default", "Job", *args),
    }
    for name, call in calls.items():
        with pytest.raises((TypeError, ValueError)) as raised:
            call()
        assert (
            "surrogate" in str(raised.value)
            or "nests" in str(raised.value)
            or ("JSON" in str(raised.value))
        ), name
        assert snapshot(redis_client, namespace) == {}, name


def test_the_deepest_accepted_payload_is_read_back_by_the_workers_policy(
    rq: Resque, redis_client: redis.Redis
) -> None:
    rq.enqueue_to("default", "Job", deep(MAX_PAYLOAD_DEPTH - 2))
    [raw] = redis_client.lrange(f"{rq.namespace}:queue:default", 0, -1)
    assert strict_json.loads(raw)["args"] == [deep(MAX_PAYLOAD_DEPTH - 2)]


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, "30", True])
def test_a_timeout_that_is_not_a_positive_number_is_refused(
    rq: Resque, redis_client: redis.Redis, namespace: str, timeout: Any
) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        rq.enqueue("default", "Job", 1, timeout=timeout)
    assert snapshot(redis_client, namespace) == {}


def test_enqueue_many_checks_every_job_before_writing_any(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    jobs = [Enqueued("default", "Job", [i]) for i in range(5)]
    for bad in (
        Enqueued("bad queue", "Job", [1]),
        Enqueued("default", "", [1]),
        Enqueued("default", "Job", ["\ud800"]),
    ):
        with pytest.raises(ValueError, match=r"queue name|class name|surrogate"):
            rq.enqueue_many([*jobs, bad])
        assert snapshot(redis_client, namespace) == {}
    assert len(rq.enqueue_many(jobs)) == 5
    assert rq.size("default") == 5


# --------------------------------------------------------------------- properties

# Any character, lone surrogates included (Hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
QUEUE_NAMES = st.one_of(
    st.from_regex(r"[a-z0-9_.:-]{1,20}", fullmatch=True),
    ANY_TEXT,
    st.text("abc-_.:,*!? \t\x1b", max_size=8),
    st.text("ab", min_size=MAX_QUEUE_NAME - 1, max_size=MAX_QUEUE_NAME + 1),
)
CLASS_NAMES = st.one_of(st.sampled_from(["Job", "My::Job", "App\\Jobs\\X", " ", ""]), ANY_TEXT)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
ARGS = st.lists(JSONISH | st.integers(90, 100).map(deep), max_size=3)


def nameable(queue: str) -> bool:
    """A worker started with ``QUEUE=<queue>`` serves exactly that queue, and nothing
    in the name can be lost on the way there (whitespace, as the issue asks)."""
    try:
        queues = QueueList.parse(queue)
    except ValueError:
        return False
    plain = queue.isprintable() and not any(c.isspace() for c in queue)
    return queues.patterns == (queue,) and not queues.dynamic and plain


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(queue=QUEUE_NAMES, job=CLASS_NAMES, args=ARGS)
def test_producer_property_valid_jobs_round_trip_invalid_ones_write_nothing(
    rq: Resque, redis_client: redis.Redis, namespace: str, queue: str, job: str, args: list[Any]
) -> None:
    before = snapshot(redis_client, namespace)
    try:
        rq.enqueue_to(queue, job, *args)
    except (TypeError, ValueError) as exc:
        if "queue name" in str(exc):  # refused only names a worker cannot serve
            assert not nameable(queue) or len(queue) > MAX_QUEUE_NAME, queue
        event("refused")
        assert snapshot(redis_client, namespace) == before
        return
    event("enqueued")
    assert nameable(queue), queue
    assert len(queue) <= MAX_QUEUE_NAME
    raw = cast("bytes | None", redis_client.rpop(f"{namespace}:queue:{queue}"))
    assert raw is not None
    item = strict_json.loads(raw)  # what a worker reads
    assert item["class"] == job
    assert item["args"] == args
