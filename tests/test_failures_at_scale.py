"""The ``failed`` list read and changed in bounded steps (failure_sweep.py): bulk
removal that copies what it keeps and swaps it in, filtered pages with a cursor, and
single removals checked by content. Records of every dialect (and garbage) mixed in."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import Events, Resque
from pyresque.cli.main import main as cli
from pyresque.client.admin import failed_trim
from pyresque.client.admin import failures as admin
from pyresque.client.admin.base import Stale
from pyresque.client.admin.items import digest
from pyresque.protocol import failure_sweep
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.failure import Failure

CLASSES = ("Mail", "Bill", "App\\Jobs\\Mail", "Ship/Now")


def record(i: int, klass: str = "Mail", queue: str = "q", exception: str = "RuntimeError") -> bytes:
    payload = {"class": klass, "args": [{"n": i}], "id": uuid.uuid4().hex}
    return failure_record(payload, exception, f"boom {i}", ["a.py:1"], "h:1:q", queue).encode()


def php_record(i: int, klass: str) -> bytes:
    """php-resque's json_encode: `/` and `\\` escaped, so a plain substring is absent."""
    payload = {"class": klass, "args": [{"n": i}]}
    text = json.dumps(
        {
            "failed_at": "2026-01-12T15:23:55-05:00",
            "payload": payload,
            "exception": "E",
            "error": "x",
            "backtrace": [],
            "worker": "h:2:q",
            "queue": "q",
        }
    )
    return text.replace("/", "\\/").encode()


def fill(client: redis.Redis, rq: Resque, items: list[bytes]) -> None:
    if items:
        client.rpush(rq.keys.failed, *items)


def failed(client: redis.Redis, rq: Resque) -> list[bytes]:
    return cast("list[bytes]", client.lrange(rq.keys.failed, 0, -1))


def klass(item: bytes) -> str | None:
    failure = Failure.decode(0, item)
    return failure.class_name if failure.parsed else None


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Resque:
    return Resque(redis_url, namespace=namespace, events=Events())


def test_remove_all_removes_exactly_the_matches_while_records_arrive(
    rq: Resque, redis_client: redis.Redis
) -> None:
    items = [record(i, CLASSES[i % 3]) for i in range(3000)] + [b"\xffgarbage", b"null"]
    fill(redis_client, rq, items)
    arrived: list[bytes] = []

    def push_meanwhile(_: int) -> None:  # called after each chunk the sweep reads
        new = record(10_000 + len(arrived), "Bill")
        arrived.append(new)
        redis_client.rpush(rq.keys.failed, new)

    removed = rq.failures.remove_all(class_name="Mail", progress=push_meanwhile)
    assert removed == 1000
    assert len(arrived) >= 3  # the sweep read many chunks, records arrived during it
    assert failed(redis_client, rq) == [i for i in items if klass(i) != "Mail"] + arrived
    assert redis_client.keys(f"{rq.keys.prefix}pyresque:failed-sweep:*") == []
    assert redis_client.ttl(rq.keys.failed) == -1


def test_remove_all_starts_again_when_records_before_it_go(
    rq: Resque, redis_client: redis.Redis
) -> None:
    items = [record(i, CLASSES[i % 2]) for i in range(1200)]
    fill(redis_client, rq, items)
    calls: list[int] = []

    def trim_once(_: int) -> None:
        calls.append(1)
        if len(calls) == 3:  # a retention trim (or Ruby's remove) takes the head away
            redis_client.lpop(rq.keys.failed)

    assert rq.failures.remove_all(class_name="Bill", progress=trim_once) == 600
    assert failed(redis_client, rq) == [i for i in items[1:] if klass(i) == "Mail"]


def test_remove_all_of_everything_and_of_nothing(rq: Resque, redis_client: redis.Redis) -> None:
    items = [record(i) for i in range(300)]
    fill(redis_client, rq, items)
    assert rq.failures.remove_all(class_name="Nobody") == 0
    assert failed(redis_client, rq) == items
    assert rq.failures.remove_all(class_name="Mail") == 300
    assert not redis_client.exists(rq.keys.failed)


def test_escaped_values_still_match(rq: Resque, redis_client: redis.Redis) -> None:
    """A value that encoders escape (php writes `\\/`) is matched by decoding, not by bytes."""
    items = [php_record(1, "Ship/Now"), php_record(2, "App\\Jobs\\Mail"), record(3, "Ship/Now")]
    fill(redis_client, rq, items)
    assert rq.failures.remove_all(class_name="Ship/Now") == 2
    assert rq.failures.remove_all(class_name="App\\Jobs\\Mail") == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(CLASSES), st.sampled_from(("q", "other")), st.booleans()),
            st.binary(max_size=40),
        ),
        max_size=400,
    ),
    wanted=st.sampled_from(CLASSES),
    queue=st.sampled_from((None, "q")),
)
def test_remove_all_matches_a_model(
    rq: Resque, redis_client: redis.Redis, kinds: list[Any], wanted: str, queue: str | None
) -> None:
    redis_client.delete(rq.keys.failed)
    items = [
        k if isinstance(k, bytes) else php_record(n, k[0]) if k[2] else record(n, k[0], k[1])
        for n, k in enumerate(kinds)
    ]
    fill(redis_client, rq, items)

    def matches(item: bytes) -> bool:
        failure = Failure.decode(0, item)
        return failure.matches(queue, wanted, None)

    expected = [i for i in items if not matches(i)]
    assert rq.failures.remove_all(queue=queue, class_name=wanted) == len(items) - len(expected)
    assert failed(redis_client, rq) == expected


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(st.booleans(), max_size=2500),
    per_page=st.integers(1, 30),
)
def test_filtered_pages_walk_every_match_once(
    rq: Resque, redis_client: redis.Redis, picks: list[bool], per_page: int, monkeypatch: Any
) -> None:
    monkeypatch.setattr(admin, "SCAN_BUDGET", 300)  # several reads per walk
    redis_client.delete(rq.keys.failed)
    fill(redis_client, rq, [record(i, "Bill" if p else "Mail") for i, p in enumerate(picks)])
    expected = [i for i in reversed(range(len(picks))) if picks[i]]
    filters = admin.FailureFilter.of(class_name="Bill")
    seen: list[int] = []
    before = None
    for _ in range(len(picks) + 2):
        page = admin.failed_page(rq, 0, per_page, filters, before)
        seen += [f["index"] for f in page["failures"]]
        if len(picks) <= 300:
            assert page["matching"] == (len(expected) if before is None else page["matching"])
        before = page["next_before"]
        if before is None:
            break
    assert seen == expected


def test_facets_come_from_the_newest_records(rq: Resque, redis_client: redis.Redis) -> None:
    fill(
        redis_client,
        rq,
        [record(i, "Old") for i in range(600)] + [record(i, "New") for i in range(10)],
    )
    facets = {f["value"]: f["count"] for f in admin.failed_page(rq)["facets"]["class"]}
    assert facets == {"New": 10, "Old": admin.FACET_SAMPLE - 10}


def test_cli_list_reads_on_from_an_offset(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    fill(redis_client, rq, [record(i, "Bill" if i % 4 == 0 else "Mail") for i in range(40)])
    run = CliRunner()
    args = ["--redis-url", redis_url, "--namespace", namespace]
    out = run.invoke(cli, ["failed", "list", "--class", "Bill", "--limit", "3", *args]).output
    assert "[0] " in out
    assert "[4] " in out
    assert "[8] " in out
    assert "[12] " not in out
    assert "more: --offset 9" in out
    more = run.invoke(cli, ["failed", "list", "--class", "Bill", "--offset", "9", "--json", *args])
    assert [r["index"] for r in json.loads(more.output)] == [12, 16, 20, 24, 28, 32, 36]


def test_remove_one_checks_content_and_position(rq: Resque, redis_client: redis.Redis) -> None:
    items = [record(i) for i in range(50)]
    fill(redis_client, rq, items)
    near_tail = Failure.decode(45, items[45])
    near_head = Failure.decode(3, items[3])
    redis_client.lset(rq.keys.failed, 10, "changed")
    assert not rq.failures.remove_record(Failure.decode(10, items[10]))
    assert rq.failures.remove_record(near_tail)
    assert rq.failures.remove_record(near_head)
    assert not rq.failures.remove_record(near_head)  # gone: the index holds another record
    rest = [b"changed" if n == 10 else i for n, i in enumerate(items) if n not in (3, 45)]
    assert failed(redis_client, rq) == rest


def test_an_action_finds_a_record_that_moved(rq: Resque, redis_client: redis.Redis) -> None:
    items = [record(i) for i in range(30)]
    fill(redis_client, rq, items)
    redis_client.lpop(rq.keys.failed, 5)  # every record moved 5 places toward the head
    assert admin.find_failure(rq, 20, digest(items[20])).index == 15
    assert admin.remove_failure(rq, 20, digest(items[20])) == 1
    with pytest.raises(Stale):
        admin.remove_failure(rq, 20, digest(items[20]))


def test_needles_are_only_what_every_encoder_writes_as_is() -> None:
    assert failure_sweep.needles("Mail", None, "") == [b"Mail"]
    assert failure_sweep.needles("Ship/Now", "App\\Mail", 'a"b', "ren\u00e9e", "<b>") == []


def dated(i: int, failed_at: str) -> bytes:
    """A record that failed at ``failed_at`` (as Ruby and php-resque write times)."""
    return json.dumps({**json.loads(record(i)), "failed_at": failed_at}).encode()


def test_trim_keeps_the_newest_and_drops_the_old(
    rq: Resque,
    redis_client: redis.Redis,
    redis_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failed_trim, "_TRIM_CHUNK", 7)
    old = [dated(i, "2020/01/01 00:00:00 UTC") for i in range(6)]
    old += [dated(i, "2020-01-01T00:00:00-05:00") for i in range(6)]
    unreadable = dated(99, "some day")
    new = [record(i) for i in range(20)]
    fill(redis_client, rq, [*old, unreadable, *new])
    assert failed_trim.trim(rq, older_than=3600) == 12  # stops at the record it cannot date
    assert failed(redis_client, rq) == [unreadable, *new]
    assert failed_trim.trim(rq, keep=15) == 6
    assert failed(redis_client, rq) == new[5:]
    assert failed_trim.trim(rq, keep=15, older_than=3600) == 0
    args = ["failed", "trim", "--keep", "3", "--redis-url", redis_url, "--namespace", namespace]
    assert CliRunner().invoke(cli, args).output == "trimmed: 12\n"
    assert failed(redis_client, rq) == new[17:]


def test_a_cursor_past_the_end_reads_from_the_end(rq: Resque, redis_client: redis.Redis) -> None:
    fill(redis_client, rq, [record(i, "Bill") for i in range(5)])
    found = failure_sweep.scan(rq.redis, rq.keys.failed, lambda i, _: True, start=10**18)
    assert ([i for i, _ in found.found], found.next) == ([4, 3, 2, 1, 0], None)
    page = admin.failed_page(rq, 0, 20, admin.FailureFilter.of(class_name="Bill"), 10**18)
    assert [f["index"] for f in page["failures"]] == [4, 3, 2, 1, 0]
    with pytest.raises(Stale):
        admin.find_failure(rq, 10**18, "0" * 16)
