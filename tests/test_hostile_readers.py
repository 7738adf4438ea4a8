"""Hostile data for pyresque's readers (issue 11, section 1): status packets, failure
records, Resque's counters, history and per-class stats, and ``/metrics`` read any
value (any bytes, any JSON, huge numbers, keys of another Redis type) without raising.
On real Redis; Hypothesis generates the values."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from hostile_gen import JSON, TEXT, any_json
from pyresque import AsyncResque, Events, Resque, Status
from pyresque.cli.main import main
from pyresque.exceptions import MalformedPayload
from pyresque.middleware import history
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.failure import Failure
from pyresque.protocol.status import JobStatus
from pyresque.web.metrics import render

NUMBERS = st.one_of(
    st.integers().map(lambda n: str(n).encode()),
    st.floats().map(lambda f: repr(f).encode()),
    st.sampled_from([b"9" * 5000, b"-" + b"9" * 30, b" 12abc", b"1_000", b"0x1A", b"1e400"]),
)
VALUES = st.one_of(st.binary(max_size=30), NUMBERS, JSON.map(any_json))
PACKETS = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"status": JSON | st.integers(0, 5)},
        optional={"updated": JSON, "started": JSON, "result": JSON},
    ).map(any_json),
    st.just(b'{"status":2,"updated":' + b"9" * 400 + b"}"),
)
RECORDS = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"failed_at": JSON, "exception": JSON, "payload": JSON},
        optional={"queue": TEXT | JSON, "backtrace": JSON, "retried_at": JSON},
    ).map(any_json),
    # A record as pyresque writes it, around any payload (the record's own JSON
    # encoder refuses NaN and infinities: a foreign producer's may not).
    st.builds(
        lambda payload, queue: any_json(
            json.loads(failure_record("P", "E", "m", [], "w", "q"))
            | {"payload": payload, "queue": queue}
        ),
        JSON,
        TEXT,
    ),
)
#: Which of the readers' keys is of another Redis type in an example, if any (the
#: ``failed`` list of another type raises WRONGTYPE: the CLI and the
#: dashboard name the key, see test_metrics_read_keys_of_another_type_as_absent).
WRONG_TYPE = st.sampled_from([None, "stat:processed", "stat:failed", "pyresque:classes"])


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Iterator[Resque]:
    client = Resque(redis_url, namespace=namespace, events=Events())
    yield client
    client.redis.close()


@settings(max_examples=150, deadline=None)
@given(packet=PACKETS)
def test_status_packet_property_decode_never_raises(packet: bytes) -> None:
    decoded = JobStatus.decode(packet)
    if decoded is not None:
        assert isinstance(decoded.status, Status)
        assert isinstance(decoded.updated, float)
        assert decoded.started is None or isinstance(decoded.started, float)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    packet=PACKETS,
    records=st.lists(RECORDS, max_size=4),
    counters=st.lists(VALUES, min_size=4, max_size=4),
    classes=st.dictionaries(
        st.binary(max_size=12) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
        VALUES,
        max_size=4,
    ),
    wrong=WRONG_TYPE,
)
def test_reader_property_no_value_makes_a_reader_raise(
    redis_url: str,
    redis_client: redis.Redis,
    namespace: str,
    packet: bytes,
    records: list[bytes],
    counters: list[bytes],
    classes: dict[bytes, bytes],
    wrong: str | None,
) -> None:
    sub = f"{namespace}:{uuid.uuid4().hex[:8]}"  # cleaned up with the test's namespace
    rq = Resque(redis_url, namespace=sub, events=Events())
    keys, r = rq.keys, redis_client
    try:
        r.set(keys.status("j1"), packet)
        if records:
            r.rpush(keys.failed, *records)
        r.set(keys.stat("processed"), counters[0])
        r.set(keys.stat("failed"), counters[1])
        r.set(keys.recovered, counters[2])
        minute = int(rq.redis.time()[0]) // 60
        r.set(keys.history("processed", "m", minute), counters[3])
        if classes:
            r.hset(keys.class_stats, mapping=classes)  # type: ignore[arg-type]
        if wrong:
            r.delete(f"{sub}:{wrong}")
            r.sadd(f"{sub}:{wrong}", "x")

        rq.job_status("j1")
        assert rq.status("j1") in (None, *Status)
        for failure in rq.failures.list(0, 10):
            retry(rq, failure)
        rq.failures.requeue_all()
        assert all(
            isinstance(n, int) for _, n in history.series(rq.redis, keys, "processed", "m", 3)
        )
        for stats in history.class_stats(rq.redis, keys):
            assert isinstance(stats.processed, int)
        assert isinstance(rq.stat("recovered"), int)
        families = {f.name: f for f in text_string_to_metric_families(render(rq).decode())}
        assert families["resque_up"].samples[0].value == 1
    finally:
        rq.redis.close()


def retry(rq: Resque, failure: Failure) -> None:
    """Retry one record: done, or refused with a message saying why."""
    try:
        rq.failures.requeue_record(failure)
    except MalformedPayload as exc:
        if "cannot be retried" not in str(exc):
            raise


# --- hand-picked ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "read"),
    [(b"12abc", 12), (b"abc", 0), (b" -3", -3), (b"9" * 5000, 2**63 - 1), (b"1.9", 1)],
)
def test_counters_read_as_ruby_to_i_in_metrics_and_stats(
    value: bytes, read: int, rq: Resque, redis_client: redis.Redis
) -> None:
    redis_client.set(rq.keys.stat("processed"), value)
    redis_client.hset(rq.keys.class_stats, mapping={"J:processed": value, "J:ms": b"1e400"})
    families = {f.name: f for f in text_string_to_metric_families(render(rq).decode())}
    assert families["resque_jobs_processed"].samples[0].value == float(read)
    [stats] = history.class_stats(rq.redis, rq.keys)
    assert stats.processed == read
    assert stats.total_ms == 0.0


def test_metrics_read_keys_of_another_type_as_absent(rq: Resque, redis_client: redis.Redis) -> None:
    for key in (rq.keys.failed, rq.keys.stat("processed"), rq.keys.class_stats):
        redis_client.sadd(key, "x")
    families = {f.name: f for f in text_string_to_metric_families(render(rq).decode())}
    assert families["resque_up"].samples[0].value == 1
    assert families["resque_failed_jobs"].samples[0].value == 0
    assert families["resque_jobs_processed"].samples[0].value == 0


def test_a_status_key_of_another_type_reads_as_no_status(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    # As documented: None when the packet "cannot be read" (a web app's status
    # endpoint must not answer 500 because someone wrote a list there).
    redis_client.rpush(rq.keys.status("j1"), "x")
    assert rq.job_status("j1") is None
    assert rq.status("j1") is None

    async def read() -> tuple[object, object]:
        resque = AsyncResque(redis_url, namespace=namespace, events=Events())
        try:
            return await resque.job_status("j1"), await resque.status("j1")
        finally:
            await resque.aclose()

    assert asyncio.run(read()) == (None, None)


def test_retrying_a_record_that_holds_no_job_is_one_clear_line(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    redis_client.rpush(
        rq.keys.failed,
        failure_record({"class": "J", "args": "x"}, "E", "m", [], "w", "q"),
        b"[" * 500 + b"]" * 500,
    )
    base = ["--redis-url", redis_url, "--namespace", namespace]
    runner = CliRunner()
    for index, why in ((0, '"args" must be a JSON list'), (1, "not a failure record")):
        result = runner.invoke(main, ["failed", "retry", str(index), *base])
        assert result.exit_code == 1, result.output
        assert f"failed job {index} cannot be retried" in result.output
        assert why in result.output
        assert "Traceback" not in result.output
    assert not redis_client.exists(rq.keys.queue("q"))
