"""Every command shows whatever Redis holds: names and values with control characters
and ANSI escapes come out escaped, huge ones cut, records of any shape (not JSON,
deep, huge, bad UTF-8, keys of the wrong Redis type) never give a traceback. Also
``pyresque status`` and ``pyresque ctl`` on a worker that does not exist."""

from __future__ import annotations

import json
import re

import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from pyresque.cli.main import ENV_VARS, main

JOB_ID = "0123456789abcdef0123456789abcdef"

#: The commands that only read, each as text and as JSON.
READERS = [
    [*command, *form]
    for command in (
        ["info"],
        ["workers"],
        ["failed", "list"],
        ["cron", "list"],
        ["delayed", "list"],
        ["status", JOB_ID],
    )
    for form in ([], ["--json"])
]

#: Commands that change something, on records they find.
WRITERS = [
    ["failed", "retry", "--all"],
    ["failed", "remove", "0"],
    ["failed", "clear", "--retried"],
    ["delayed", "cancel", "--class", "Job"],
    ["delayed", "enqueue-now", "--id", "x"],
    ["cron", "pause", "x"],
    ["ctl", "pause", "--all"],
]

#: What a terminal would act on: C0/C1 controls (but newline), bidi overrides, surrogates.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

ESC = "\x1b[2J\x1b]0;owned\x07"  # clear screen, set the window title
BIDI = "\u202egnp.exe"


def run(args: list[str], redis_url: str, namespace: str) -> Result:
    env: dict[str, str | None] = dict.fromkeys(ENV_VARS)
    return CliRunner().invoke(
        main, [*args, "--redis-url", redis_url, "--namespace", namespace], env=env
    )


def assert_shown_safely(result: Result, args: list[str]) -> None:
    """Exit 0, or one error line; no traceback; nothing a terminal would act on."""
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}") from result.exception
    assert "Traceback" not in out, (args, out)
    assert not RAW_CONTROL.search(out), (args, out)
    if result.exit_code != 0:
        lines = out.strip().splitlines()
        assert len(lines) == 1, (args, out)
        assert lines[0].startswith("pyresque: error: "), (args, out)
    elif "--json" in args:
        json.loads(out)


def seed_hostile_names(client: redis.Redis, ns: str) -> None:
    """Resque's keys, each holding names and values with escapes, as any producer could."""
    queue = f"q{ESC}"
    client.sadd(f"{ns}:queues", queue, b"bad\xff")
    client.rpush(f"{ns}:queue:{queue}", json.dumps({"class": ESC, "args": [ESC]}))
    worker = f"host{ESC}:1:{queue}"
    client.sadd(f"{ns}:workers", worker)
    client.set(
        f"{ns}:worker:{worker}",
        json.dumps({"queue": queue, "run_at": ESC, "payload": {"class": BIDI, "args": []}}),
    )
    client.set(f"{ns}:stat:processed:{worker}", "12abc")
    client.set(f"{ns}:worker:{worker}:started", ESC)
    client.rpush(
        f"{ns}:failed",
        json.dumps(
            {
                "failed_at": ESC,
                "payload": {"class": ESC, "args": [BIDI]},
                "exception": ESC,
                "error": "x" * 100_000,
                "backtrace": [ESC],
                "worker": worker,
                "queue": queue,
            }
        ),
        b"\xff\xfe not json \x1b[31m",
    )
    client.zadd(f"{ns}:delayed_queue_schedule", {"2000000000": 2000000000})
    client.rpush(
        f"{ns}:delayed:2000000000",
        json.dumps({"class": ESC, "args": [ESC], "queue": queue}),
        b"\x1b[31m",
    )
    client.hset(
        f"{ns}:pyresque:cron:schedules",
        ESC,
        json.dumps({"cron": ESC, "job": BIDI, "queue": queue, "tz": ESC}),
    )
    client.hset(f"{ns}:pyresque:cron:state", ESC, json.dumps({"outcome": ESC, "last_run": 1e300}))
    client.set(
        f"{ns}:job:{JOB_ID}:status",
        json.dumps({"status": 4, "updated": 1, "started": ESC, "result": {ESC: BIDI}}),
    )


def test_names_and_values_with_control_characters_are_escaped_in_every_command(
    redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    seed_hostile_names(redis_client, namespace)
    for args in READERS:
        result = run(args, redis_url, namespace)
        assert result.exit_code == 0, (args, result.output)
        assert_shown_safely(result, args)
        if "--json" not in args and args[0] != "status":
            assert "\\x1b[2J" in result.output, (args, result.output)
    shown = run(["failed", "list"], redis_url, namespace).output
    assert "... (100,000 characters)" in shown  # the huge error is cut
    assert "\\xff" in shown  # bad UTF-8 shown as escapes
    for args in WRITERS:
        assert_shown_safely(run(args, redis_url, namespace), args)


def test_status_shows_a_tracked_job_and_says_when_there_is_none(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Job", 1, track_status=True)
    assert job_id is not None
    result = run(["status", job_id], redis_url, namespace)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"job {job_id}: waiting\n")
    result = run(["status", job_id, "--json"], redis_url, namespace)
    assert json.loads(result.output)["status"] == "waiting"

    redis_client.set(f"{namespace}:job:{job_id}:status", json.dumps({"status": 4, "result": ESC}))
    result = run(["status", job_id], redis_url, namespace)
    assert "complete" in result.output
    assert "\\x1b[2J" in result.output
    assert_shown_safely(result, ["status"])

    for packet, expected in ((None, "has no status"), (b"\x1b[31m{", "not a status packet")):
        key = f"{namespace}:job:{job_id}:status"
        redis_client.delete(key) if packet is None else redis_client.set(key, packet)
        result = run(["status", job_id], redis_url, namespace)
        assert result.exit_code == 1, result.output
        assert expected in result.output
        assert_shown_safely(result, ["status"])


def test_ctl_on_a_worker_that_does_not_exist_exits_non_zero(redis_url: str, namespace: str) -> None:
    result = run(["ctl", "pause", f"nohost{ESC}:1:default"], redis_url, namespace)
    assert result.exit_code == 1, result.output
    assert "is not a live pyresque worker" in result.output
    assert_shown_safely(result, ["ctl"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["a b", "Job"], "contains whitespace"),
        (["q\x07", "Job"], "unprintable"),
        (["q", ""], "class name is empty"),
        (["q", "Job", '["\\ud800"]'], "surrogate"),
        (["q", "Job", "NaN"], "DATA must be JSON"),
    ],
)
def test_enqueue_refuses_what_no_worker_could_take_in_one_line(
    redis_client: redis.Redis, redis_url: str, namespace: str, args: list[str], expected: str
) -> None:
    result = run(["enqueue", *args], redis_url, namespace)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert_shown_safely(result, ["enqueue"])
    assert not list(redis_client.scan_iter(match=f"{namespace}:*"))


def test_a_worker_logs_names_from_redis_escaped(procs: Procs, state: State, namespace: str) -> None:
    state.push_raw("default", json.dumps({"class": f"Nope{ESC}", "args": [BIDI]}).encode())
    worker = procs.worker(namespace, "default", "--mode", "inline", "--interval", "0")
    assert worker.wait_exit(30) == 0, worker.log()
    wait_for(lambda: len(state.failed()) == 1, 10, "the job to fail")
    log = worker.log()
    assert "Nope\\x1b[2J\\x1b]0;owned\\x07" in log, log
    assert not RAW_CONTROL.search(log), log


# --------------------------------------------------------------------- properties

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _record(fields: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects with the fields a reader looks for, each of any JSON type."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(fields, JSONISH)).map(
        lambda d: json.dumps(d).encode()
    )


VALUES = st.one_of(
    st.binary(max_size=40),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"NaN",
            b"1e400",
            b"9" * 5000,
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 300 + b"1" + b"}" * 300,
            b'"\\ud800"',
            b"\x1b[31m" * 3,
            b"x" * 50_000,
        ]
    ),
    _record(["class", "args", "id", "queue", "payload", "run_at"]),
    _record(["failed_at", "payload", "exception", "error", "backtrace", "queue", "retried_at"]),
    _record(["status", "updated", "started", "result"]),
    _record(["cron", "every", "job", "queue", "tz", "last_run", "next_run", "outcome", "job_id"]),
)
NAMES = st.one_of(st.binary(min_size=1, max_size=12), st.sampled_from([b"default", ESC.encode()]))

#: (key under the namespace, its Redis type) for every key a read-only command reads.
LAYOUT = {
    "queues": "set",
    "queue:{name}": "list",
    "workers": "set",
    "worker:{name}": "string",
    "worker:{name}:started": "string",
    "stat:processed:{name}": "string",
    "workers:heartbeat": "hash",
    "pyresque:leases": "zset",
    "stat:processed": "string",
    "stat:failed": "string",
    "failed": "list",
    "delayed_queue_schedule": "zset",
    "delayed:{name}": "list",
    "pyresque:cron:schedules": "hash",
    "pyresque:cron:state": "hash",
    "pyresque:cron:paused": "set",
    f"job:{JOB_ID}:status": "string",
}
TYPES = ["string", "list", "set", "hash", "zset"]


def write(client: redis.Redis, key: bytes, kind: str, name: bytes, values: list[bytes]) -> None:
    if kind == "string":
        client.set(key, values[0])
    elif kind == "list":
        client.rpush(key, *values)
    elif kind == "set":
        client.sadd(key, name, *values)
    elif kind == "hash":
        client.hset(key, mapping={name: values[0], **{v[:20] or b"_": v for v in values}})
    else:
        client.zadd(key, {name: 2e9, **{v: float(len(v)) for v in values}})


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(sorted(LAYOUT)),
            NAMES,
            st.lists(VALUES, min_size=1, max_size=3),
            st.integers(0, 9),  # 0: a key of another Redis type than Resque writes
        ),
        min_size=1,
        max_size=6,
    )
)
def test_read_only_commands_property_any_redis_data_is_shown_or_one_line(
    redis_client: redis.Redis,
    redis_url: str,
    namespace: str,
    data: list[tuple[str, bytes, list[bytes], int]],
) -> None:
    ns = f"{namespace}:{len(data)}{abs(hash(repr(data))) % 10**9}"
    prefix = f"{ns}:".encode()
    try:
        for layout, name, values, wrong in data:
            key = prefix + layout.encode().replace(b"{name}", name)
            kind = TYPES[(TYPES.index(LAYOUT[layout]) + 1) % 5] if wrong == 0 else LAYOUT[layout]
            redis_client.delete(key)
            write(redis_client, key, kind, name, values)
        for args in READERS:
            assert_shown_safely(run(args, redis_url, ns), args)
    finally:
        for key in redis_client.scan_iter(match=prefix + b"*"):
            redis_client.delete(key)


@pytest.mark.parametrize("args", READERS + WRITERS, ids=" ".join)
def test_a_key_of_the_wrong_type_is_one_line(
    redis_client: redis.Redis, redis_url: str, namespace: str, args: list[str]
) -> None:
    for key in ("queues", "workers", "failed", "delayed_queue_schedule"):
        redis_client.hset(f"{namespace}:{key}", "x", "y")
    redis_client.hset(f"{namespace}:pyresque:cron:schedules:x", "x", "y")
    redis_client.rpush(f"{namespace}:job:{JOB_ID}:status", "x")
    assert_shown_safely(run(args, redis_url, namespace), args)
