"""Payload decoding (both producer dialects) and encoding (spec section 2), on a real Redis."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import example, given
from hypothesis import strategies as st

from pyresque import Dialect, Enqueued, MalformedPayload, Payload, Resque
from pyresque.protocol.payload import _micros, dumps

HEX32 = re.compile(r"^[0-9a-f]{32}$")

# Byte strings exactly as the producers write them (spec §2.1, §9 S1/S3).
RUBY_S3 = b'{"class":"Archive","args":[44,"masterbrew"]}'
PHP_S1 = (
    b'{"class":"My_Job","args":[{"name":"Chris"}],'
    b'"id":"5d3629bf42919823d35ddf6ca8e1b609","prefix":"","queue_time":1494823197.9535}'
)
# chrisboulton/php-resque: no "prefix" field.
CHRISBOULTON = (
    b'{"class":"My_Job","args":[{"name":"Chris"}],'
    b'"id":"5d3629bf42919823d35ddf6ca8e1b609","queue_time":1494823197.9535}'
)
# PHP json_encode default flags: "/" escaped as "\/", non-ASCII as \uXXXX,
# namespaced class names with "\\".
PHP_ESCAPED = (
    b'{"class":"App\\\\Jobs\\\\SendMail","args":[{"url":"http:\\/\\/example.com\\/a\\/b",'
    b'"name":"Ren\\u00e9e","smile":"\\ud83d\\ude00","path":"\\/tmp\\/x"}],'
    b'"id":"0123456789abcdef0123456789abcdef","prefix":"app","queue_time":1700000000.25}'
)


# ----------------------------------------------------------------------------- decoding


def test_decode_ruby_payload_from_spec() -> None:
    payload = Payload.decode(RUBY_S3)
    assert payload.class_name == "Archive"
    assert payload.args == [44, "masterbrew"]
    assert payload.id is None
    assert payload.prefix == ""
    assert payload.queue_time is None
    assert payload.extra == {}
    # php-resque's view of a Ruby payload: the first argument.
    assert payload.data == 44


def test_decode_php_payload_from_spec() -> None:
    payload = Payload.decode(PHP_S1)
    assert payload.class_name == "My_Job"
    assert payload.args == [{"name": "Chris"}]
    assert payload.data == {"name": "Chris"}
    assert payload.id == "5d3629bf42919823d35ddf6ca8e1b609"
    assert payload.prefix == ""
    assert payload.queue_time == pytest.approx(1494823197.9535)
    assert payload.extra == {}


def test_decode_chrisboulton_payload_without_prefix() -> None:
    payload = Payload.decode(CHRISBOULTON)
    assert payload.class_name == "My_Job"
    assert payload.data == {"name": "Chris"}
    assert payload.id == "5d3629bf42919823d35ddf6ca8e1b609"
    assert payload.prefix == ""
    assert payload.queue_time == pytest.approx(1494823197.9535)
    assert payload.extra == {}


def test_decode_php_escapes() -> None:
    payload = Payload.decode(PHP_ESCAPED)
    assert payload.class_name == "App\\Jobs\\SendMail"
    assert payload.data == {
        "url": "http://example.com/a/b",
        "name": "Renée",
        "smile": "\U0001f600",
        "path": "/tmp/x",
    }
    assert payload.id == "0123456789abcdef0123456789abcdef"
    assert payload.prefix == "app"
    assert payload.queue_time == 1700000000.25


def test_decode_accepts_str_as_well_as_bytes() -> None:
    assert Payload.decode(RUBY_S3.decode()) == Payload.decode(RUBY_S3)


def test_decode_raw_utf8_as_ruby_writes_it() -> None:
    raw = '{"class":"Greet","args":["Renée","東京/大阪"]}'.encode()
    assert Payload.decode(raw).args == ["Renée", "東京/大阪"]


@pytest.mark.parametrize(
    ("raw", "args", "data"),
    [
        (b'{"class":"X"}', [], None),
        (b'{"class":"X","args":[]}', [], None),
        (b'{"class":"X","args":[null]}', [None], None),  # php enqueue with no args
        (b'{"class":"X","args":[[]]}', [[]], []),  # php enqueue with an empty array
        (b'{"class":"X","args":[[1,2]]}', [[1, 2]], [1, 2]),  # php list data
    ],
)
def test_decode_args_variants(raw: bytes, args: list[Any], data: Any) -> None:
    payload = Payload.decode(raw)
    assert payload.args == args
    assert payload.data == data


def test_decode_keeps_unknown_fields_and_round_trips_them() -> None:
    raw = b'{"class":"X","args":[1],"id":"abc","prefix":"","queue_time":1.5,"attempts":2,"z":{}}'
    payload = Payload.decode(raw)
    assert payload.extra == {"attempts": 2, "z": {}}
    assert payload.attempts == 2
    assert payload.encode().encode() == raw


# ----------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"class":"X","args":[1]', "not valid JSON"),
        (b"not json at all", "not valid JSON"),
        (b"[]", "must be a JSON object, got list"),
        (b'"My_Job"', "must be a JSON object, got str"),
        (b"null", "must be a JSON object, got NoneType"),
        (b"42", "must be a JSON object, got int"),
        (b'{"args":[1]}', 'no "class"'),
        (b'{"class":null,"args":[]}', 'no "class"'),
        (b'{"class":5,"args":[]}', '"class" must be a non-empty string, got 5'),
        (b'{"class":["X"],"args":[]}', "\"class\" must be a non-empty string, got ['X']"),
        (b'{"class":"","args":[]}', '"class" must be a non-empty string'),
        (b'{"class":"X","args":{"a":1}}', '"args" must be a JSON list of arguments, got dict'),
        (b'{"class":"X","args":"a"}', '"args" must be a JSON list of arguments, got str'),
        (b'{"class":"X","args":null}', '"args" must be a JSON list'),
        (b'{"class":"X","args":["\xff\xfe"]}', "not valid UTF-8 (byte 22"),
        (b"\xc3", "not valid UTF-8"),
    ],
)
def test_malformed_payloads_raise_with_a_precise_message(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        Payload.decode(raw)
    assert message in str(info.value)
    # A MalformedPayload is a ValueError, so generic callers can catch it too.
    assert isinstance(info.value, ValueError)


def test_from_dict_rejects_non_objects() -> None:
    with pytest.raises(MalformedPayload, match="must be a JSON object, got list"):
        Payload.from_dict(["class", "X"])


# ----------------------------------------------------------------------------- encoding


def test_ruby_dialect_encoding_is_byte_exact() -> None:
    payload = Payload.build("Archive", [44, "masterbrew"], Dialect.RUBY)
    assert payload.encode().encode() == RUBY_S3


def test_ruby_dialect_writes_raw_utf8_and_unescaped_slashes() -> None:
    payload = Payload.build("Greet", ["Renée", "a/b", {"k": "東京"}], Dialect.RUBY)
    assert (
        payload.encode().encode()
        == '{"class":"Greet","args":["Renée","a/b",{"k":"東京"}]}'.encode()
    )


def test_php_dialect_encoding_shape() -> None:
    before = time.time()
    payload = Payload.build("My_Job", [{"name": "Chris"}], Dialect.PHP)
    item = json.loads(payload.encode())
    assert list(item) == ["class", "args", "id", "prefix", "queue_time"]
    assert item["class"] == "My_Job"
    assert item["args"] == [{"name": "Chris"}]
    assert HEX32.match(item["id"])
    assert item["prefix"] == ""
    assert isinstance(item["queue_time"], float)
    assert before <= item["queue_time"] <= time.time()


def test_php_payload_round_trips_through_decode() -> None:
    payload = Payload.decode(PHP_ESCAPED)
    again = Payload.decode(payload.encode())
    assert again == payload
    # Written the Ruby way (raw UTF-8, "/" unescaped), read back identically.
    assert "\\/" not in payload.encode()
    assert "Renée" in payload.encode()


def test_ruby_dialect_on_the_wire(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, dialect=Dialect.RUBY)
    resque.enqueue_to("default", "Archive", 44, "masterbrew")
    assert redis_client.lrange(f"{namespace}:queue:default", 0, -1) == [RUBY_S3]


def test_foreign_payloads_on_the_wire_decode(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:queue:default"
    redis_client.rpush(key, RUBY_S3, PHP_S1, CHRISBOULTON, PHP_ESCAPED)
    decoded = [Payload.decode(raw) for raw in redis_client.lrange(key, 0, -1)]
    assert [p.class_name for p in decoded] == ["Archive", "My_Job", "My_Job", "App\\Jobs\\SendMail"]
    assert Resque(redis_url, namespace=namespace).peek("default", 0, 4)[3]["args"][0]["url"] == (
        "http://example.com/a/b"
    )


# ----------------------------------------------------------------------------- bad args


def _keys_under(client: redis.Redis, namespace: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{namespace}:*", count=1000))


@pytest.mark.parametrize(
    ("value", "named"),
    [
        pytest.param(object(), "<object object at", id="object"),
        pytest.param({1, 2}, "{1, 2} (type set)", id="set"),
        pytest.param(b"raw", "b'raw' (type bytes)", id="bytes"),
        pytest.param(float("nan"), "nan", id="nan"),
        pytest.param([1.0, {"x": float("-inf")}], "-inf", id="-inf"),
    ],
)
@pytest.mark.parametrize("dialect", [Dialect.PHP, Dialect.RUBY])
def test_non_json_args_raise_type_error_naming_the_value_and_write_nothing(
    redis_client: redis.Redis,
    namespace: str,
    value: object,
    named: str,
    dialect: Dialect,
) -> None:
    resque = Resque(redis_client, namespace=namespace, dialect=dialect)
    calls: list[Callable[[], object]] = [
        lambda: resque.enqueue("default", "X", {"v": value}),
        lambda: resque.enqueue("default", "X", {"v": value}, track_status=True),
        lambda: resque.enqueue_to("default", "X", 1, value),
        # A good job before the bad one is not written either: the batch is all or nothing.
        lambda: resque.enqueue_many(
            [Enqueued("default", "X", [1]), Enqueued("default", "X", [value])]
        ),
    ]
    for call in calls:
        with pytest.raises(TypeError) as info:
            call()
        assert named in str(info.value)
    assert _keys_under(redis_client, namespace) == []


def test_nan_and_infinity_are_rejected_as_type_error(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace)
    for value, name in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
        with pytest.raises(TypeError, match="valid JSON") as info:
            resque.enqueue("default", "X", [value])
        assert f"{name} is not a JSON number" in str(info.value)
    assert _keys_under(redis_client, namespace) == []


def test_dumps_is_compact() -> None:
    assert dumps({"a": [1, {"b": None}], "c": "/é"}) == '{"a":[1,{"b":null}],"c":"/é"}'


_json_keys = st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans())
_FIELDS = {"class", "args", "id", "prefix", "queue_time"}  # Payload's attributes
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_keys, inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_dumps_writes_what_the_json_module_writes(value: Any) -> None:
    """``dumps`` makes the C encoder directly (issue 12): byte for byte what
    ``json.dumps`` with the same options writes, for any value; infinities and
    NaN raise TypeError as before."""
    try:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        with pytest.raises(TypeError, match="valid JSON"):
            dumps(value)
        return
    assert dumps(value) == expected


def test_circular_args_raise_type_error_and_write_nothing(
    redis_client: redis.Redis, namespace: str
) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    resque = Resque(redis_client, namespace=namespace)
    with pytest.raises(TypeError, match=r"[Cc]ircular"):
        resque.enqueue("default", "X", {"loop": loop})
    assert _keys_under(redis_client, namespace) == []


@given(st.floats(min_value=0, max_value=2e10, exclude_min=True))
@example(713579929.0899115)  # a tie at the 7th decimal: 1 µs apart, plus part of a step
def test_queue_time_is_written_to_the_microsecond(seconds: float) -> None:
    """``queue_time`` is rounded to six decimals (php-resque's ``microtime``) without
    ``round``'s decimal string: at most one microsecond from it, never more decimals.
    Both are the floats nearest two such decimals, each within half a float step (ulp)
    of it: 1.01 µs (and beyond 1e9 s, 1.01 µs per 1e9 s) was too tight where a step is
    0.12 µs (5e8 to 1e9 s: 0.6% of the times there failed, hardly ever drawn)."""
    written = _micros(seconds)
    assert abs(written - round(seconds, 6)) <= 1e-6 + math.ulp(seconds)
    assert float(f"{written:.6f}") == written


@given(st.integers(min_value=1, max_value=2**53 - 1))
def test_a_time_in_microseconds_is_written_as_it_is(micros: int) -> None:
    seconds = micros / 1e6  # what Payload.build makes
    assert _micros(seconds) == seconds == round(seconds, 6)


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_other_queue_times_are_rounded_as_before(value: Any) -> None:
    fast = isinstance(value, float) and 0 < value < 2**53 / 1e6
    if not fast:
        assert _micros(value) == round(value, 6)
        assert type(_micros(value)) is type(round(value, 6))


def test_job_ids_are_unique_across_threads_and_forks() -> None:
    """Ids are cut from one draw of random bytes: threads never share one, and a forked
    child draws its own rather than repeating its parent's."""
    import os
    import threading

    from pyresque.protocol.payload import IDS_PER_DRAW, new_job_id

    new_job_id()  # the pool holds ids now: a child that kept them would repeat them
    read, write = os.pipe()
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            os.write(write, "".join(new_job_id() for _ in range(5)).encode())
            os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    os.close(write)
    with os.fdopen(read) as pipe:
        from_children = re.findall(r"[0-9a-f]{32}", pipe.read())
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.extend(new_job_id() for _ in range(IDS_PER_DRAW)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ours = found + [new_job_id() for _ in range(5)]
    assert len(from_children) == 15
    assert all(HEX32.match(job_id) for job_id in ours)
    assert len(set(ours + from_children)) == len(ours) + 15


@given(
    st.dictionaries(
        st.sampled_from(["id", "prefix", "queue_time", "attempts", "z", "class_"]) | _json_keys,
        _json_values,
        max_size=6,
    )
)
def test_from_dict_keeps_every_field_known_ones_as_attributes_the_rest_in_extra(
    fields: dict[str, Any],
) -> None:
    item = {"class": "Echo", "args": [1], **fields}
    payload = Payload.from_dict(item)
    assert payload.extra == {k: v for k, v in fields.items() if k not in _FIELDS}
    assert payload.to_dict().keys() - {"id", "prefix", "queue_time"} >= item.keys() - _FIELDS
