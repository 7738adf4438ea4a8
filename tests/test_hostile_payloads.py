"""Hostile queue items and in-flight records never stop a worker (issue 11, section 1).

Every case runs through real ``pyresque worker`` processes in each execution mode:
an item that cannot run ends in ``failed`` as ``MalformedPayload`` naming the
problem (raw bytes kept), a job that ends in a strange way fails (or succeeds)
with a clear record, and the worker goes on with the next job.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, cast

import pytest

from e2e_support import Proc, Procs, State, wait_for
from pyresque import Resque, Status
from pyresque.exceptions import MalformedPayload
from pyresque.jobs.payload_fields import check_fields
from pyresque.jobs.perform import Outcome
from pyresque.jobs.retry_state import RetryState
from pyresque.protocol import strict_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload

HOSTILE_JOBS = Path(__file__).resolve().parent / "hostile_jobs.py"
MODES = ("fork", "prefork", "inline", "threads", "asyncio")
DEEP = b"[" * 150 + b"]" * 150
MALFORMED = "pyresque.MalformedPayload"

#: Items a worker must refuse before anything of them runs: (raw item, error shown).
BAD_ITEMS: list[tuple[bytes, str]] = [
    (b'{"class":"HostileRecord","args":[NaN]}', 'field "args": NaN is not a JSON number'),
    (b'{"class":"HostileRecord","args":[1e400]}', "1e400 is too large for a double"),
    (b'{"class":"HostileRecord","args":' + DEEP + b"}", "nested deeper than 100 levels"),
    (b'{"class":"HostileRecord","args":[1' + b"0" * 5000 + b"]}", "4300"),
    (b'{"class":"HostileRecord","args":["\xff"]}', "not valid UTF-8"),
    (b'{"class":"HostileRecord","args":["\\ud800"]}', "lone UTF-16 surrogate"),
    (
        b'{"class":"HostileRecord","args":["t"],"timeout":"abc"}',
        'field "timeout" must be a number of seconds above 0 and at most 1e+08, got "abc"',
    ),
    (b'{"class":"HostileRecord","args":["t"],"timeout":1e300}', 'field "timeout"'),
    (
        b'{"class":"HostileRecord","args":["r"],"retry":{"attempts":"x"}}',
        'field "retry" is not a usable retry policy',
    ),
    (
        b'{"class":"HostileRecord","args":["a"],"attempts":"x"}',
        'field "attempts" must be a non-negative integer (below 2**63), got "x"',
    ),
    (b'{"class":"HostileRecord","args":["c"],"crashes":-1}', 'field "crashes"'),
    (b'{"class":"HostileRecord","args":["c"],"crashes":1' + b"0" * 30 + b"}", 'field "crashes"'),
    (b'{"class":"HostileRecord","args":["u"],"unique":[1]}', 'field "unique"'),
]

#: Jobs that fail in ways the worker must survive: (item, exception ends with, error).
FAILING_JOBS = [
    (
        b'{"class":"HostileUnprintable","args":[]}',
        "_Unprintable",
        "(str() of this _Unprintable raised RuntimeError)",
    ),
    (b'{"class":"HostileSurrogate","args":[]}', "ValueError", "caf\\udce9"),
    (b'{"class":"HostileExit","args":[]}', "SystemExit", "3"),
    (b'{"class":"HostileBaseException","args":[]}', "_Escape", "out"),
    # Its backoff overflows when the next attempt is computed: it fails, not retried.
    (
        b'{"class":"HostileFail","args":[],"attempts":100,'
        b'"retry":{"attempts":2000,"backoff":{"factor":1e10}}}',
        "RuntimeError",
        "fails",
    ),
    # Its kept retry state (planted: RETRY_STATE) holds a policy that is not one.
    (b'{"class":"HostileFail","args":["rs"],"retry":{"attempts":9}}', "RuntimeError", "fails"),
]
RETRY_STATE = (Payload("HostileFail", ["rs"]), {"attempts": 3, "retry": {"backoff": [1]}})

#: Jobs that succeed although their result is not JSON.
ODD_RESULTS = ["HostileNaN", "HostileDeepResult"]


def start_worker(procs: Procs, namespace: str, mode: str, *more: str) -> Proc:
    extra = ["--mode", mode, "--app", str(HOSTILE_JOBS), *more]
    if mode in ("threads", "asyncio", "prefork"):
        extra += ["--concurrency", "2"]
    return procs.worker(namespace, "default", *extra)


def _ran(state: State) -> list[Any]:
    return [
        json.loads(x) for x in cast("list[bytes]", state.r.lrange(state.key("hostile:ran"), 0, -1))
    ]


def _inflight(state: State) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for key in state.r.scan_iter(match=state.key("pyresque:inflight:*")):
        found.update(cast("dict[bytes, bytes]", state.r.hgetall(key)))
    return found


def _same_job(shown: Any, item: dict[str, Any]) -> bool:
    return isinstance(shown, dict) and (shown["class"], shown["args"]) == (
        item["class"],
        item["args"],
    )


@pytest.mark.parametrize("mode", MODES)
def test_hostile_items_fail_and_the_worker_goes_on(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    worker = start_worker(procs, namespace, mode)
    kept, retry_state = RETRY_STATE
    key = RetryState(state.r, Keys.for_namespace(namespace)).key(kept)
    state.r.set(key, json.dumps(retry_state))
    items = [raw for raw, _ in BAD_ITEMS]
    items += [raw for raw, _, _ in FAILING_JOBS]
    items += [json.dumps({"class": name, "args": []}).encode() for name in ODD_RESULTS]
    # A queue_time no double can hold is ignored, not fatal.
    items.append(b'{"class":"HostileRecord","args":["qt"],"queue_time":1' + b"0" * 400 + b"}")
    items.append(b'{"class":"HostileRecord","args":["good"]}')
    for raw in items:
        state.push_raw("default", raw)

    wait_for(lambda: state.number("stat:processed") == len(items), 60, "every item processed")
    records = state.wait_failed(len(BAD_ITEMS) + len(FAILING_JOBS))
    assert len(records) == len(BAD_ITEMS) + len(FAILING_JOBS)
    assert sorted(map(tuple, _ran(state))) == [("good",), ("qt",)]  # each exactly once

    malformed = [r for r in records if r["exception"] == MALFORMED]
    assert len(malformed) == len(BAD_ITEMS)
    for raw, error in BAD_ITEMS:
        [record] = [r for r in malformed if r["payload"] == raw.decode("utf-8", "backslashreplace")]
        assert error in record["error"], (raw[:80], record["error"])
        assert record["queue"] == "default"
    for raw, exception, error in FAILING_JOBS:
        item = json.loads(raw)  # the record's payload adds the attempts' errors
        [record] = [r for r in records if _same_job(r["payload"], item)]
        assert record["exception"].endswith(exception), record
        assert record["error"] == error, record
    assert state.qlen("default") == 0
    assert _inflight(state) == {}
    assert worker.running()
    assert "Traceback" not in worker.log(), worker.log()


def test_a_tracked_job_refused_for_a_bad_field_reports_failed(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """Its status says FAILED, so whoever waits on it is not left waiting."""
    start_worker(procs, namespace, "inline")
    job_id = rq.enqueue("elsewhere", "HostileRecord", ["tracked"], track_status=True)
    assert job_id is not None
    [raw] = cast("list[bytes]", state.r.lrange(state.key("queue:elsewhere"), 0, -1))
    item = json.loads(raw) | {"timeout": "abc"}
    state.push_raw("default", json.dumps(item).encode())

    wait_for(lambda: rq.status(job_id) == Status.FAILED, message="the FAILED status")
    [record] = state.wait_failed(1)
    assert 'field "timeout"' in record["error"]
    assert _ran(state) == []


@pytest.mark.parametrize("mode", ["asyncio", "inline"])
def test_an_async_job_that_exits_fails_and_async_jobs_go_on(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    worker = start_worker(procs, namespace, mode)
    state.push_raw("default", b'{"class":"HostileAsyncExit","args":[]}')
    [record] = state.wait_failed(1, timeout=60)
    assert (record["exception"], record["error"]) == ("SystemExit", "4")
    state.push_raw("default", b'{"class":"HostileAsyncRecord","args":["after"]}')
    wait_for(lambda: _ran(state) == [["after"]], 60, "the next async job to run")
    assert worker.running()
    assert "Traceback" not in worker.log(), worker.log()


def _record(queue: Any, payload: Any) -> bytes:
    return json.dumps({"queue": queue, "payload": payload, "claimed_at": 1}).encode()


GHOST = "ghost-host:4242:default"

#: In-flight records no worker could have written: each goes to failed on its own.
BAD_RECORDS: list[tuple[bytes, bytes, str]] = [
    (b"t-nonjson", b"not json", "in-flight record: not valid JSON"),
    (b"t-noqueue", json.dumps({"payload": "{}"}).encode(), 'no "queue"'),
    (b"t-intqueue", _record(5, '{"class":"HostileRecord","args":[]}'), 'no "queue"'),
    (b"t-objpayload", _record("default", {"class": "HostileRecord"}), 'no "payload" string'),
    (b"t-deep", b'{"queue":"default","payload":"x","d":' + DEEP + b"}", "nested deeper"),
    (b"t-nan", b'{"queue":"default","payload":"x","claimed_at":NaN}', "NaN"),
    (b"t-huge", b"z" * (2 * 1024 * 1024), "not valid JSON"),
    (b"t-list", b"[1,2]", "must be a JSON object, got list"),
]


def _ghost(state: State, records: dict[bytes, bytes]) -> None:
    """A dead worker with these records in flight, its lease long expired."""
    state.r.hset(state.key(f"pyresque:inflight:{GHOST}"), mapping=records)  # type: ignore[arg-type]
    state.r.sadd(state.key("workers"), GHOST)
    state.r.zadd(state.key("pyresque:leases"), {GHOST: 0})


def test_recovery_fails_each_bad_record_on_its_own_and_recovers_the_others(
    procs: Procs, state: State, namespace: str
) -> None:
    good = {
        b"t-good": _record("default", '{"class":"HostileRecord","args":["rec"]}'),
        # A token that is not UTF-8 still names its record.
        b"t-\xff\xfe": _record("default", '{"class":"HostileRecord","args":["tok"]}'),
        # A payload that is not JSON: recovered as it is, then failed by the worker.
        b"t-badpayload": _record("default", '{"class":"HostileRecord","args":[NaN]}'),
        # A crash count one more crash would make too long to write: requeued as it was.
        b"t-hugecount": _record(
            "default", '{"class":"HostileRecord","args":["hc"],"crashes":%s}' % ("9" * 4300)
        ),
    }
    # claim.lua copies bytes that are not UTF-8 into the record as they are.
    good[b"t-latin1"] = (
        b'{"queue":"default","payload":"{\\"class\\":\\"X\\",\\"args\\":[\\"\xe9\\"]}"}'
    )
    _ghost(state, {**good, **{token: record for token, record, _ in BAD_RECORDS}})

    worker = start_worker(procs, namespace, "fork")
    records = state.wait_failed(len(BAD_RECORDS) + 3, timeout=60)
    wait_for(lambda: len(_ran(state)) == 2, 60, "the good records to run")
    assert sorted(map(tuple, _ran(state))) == [("rec",), ("tok",)]
    for _, record, error in BAD_RECORDS:
        shown = record.decode("utf-8", "backslashreplace")
        [failure] = [r for r in records if r["payload"] == shown]
        assert failure["exception"] == MALFORMED
        assert error in failure["error"], failure["error"]
        assert failure["worker"] == GHOST
    bad_payloads = [r for r in records if r["worker"] != GHOST]
    assert sorted(r["error"][:60] for r in bad_payloads) == [
        'bad payload field "args": NaN is not a JSON number',
        "bad payload: not valid UTF-8 (byte 22: b'\\xe9')",
        'payload field "crashes" must be a non-negative integer (belo',
    ]
    wait_for(lambda: GHOST not in state.workers(), 30, "the dead worker to be unregistered")
    # The last job's finish follows its side effect: wait for it.
    wait_for(lambda: _inflight(state) == {}, 30, "nothing left in flight")
    assert worker.running()


def test_shutdown_gives_back_each_record_on_its_own(
    procs: Procs, state: State, namespace: str
) -> None:
    worker = start_worker(procs, namespace, "fork")
    wid = state.wait_registered(state.worker_id(worker), timeout=60)
    # Past its start (which gives back what a dead worker of the same id held, as a crash).
    wait_for(lambda: "Waiting for" in worker.title(), 60, "the worker to wait for jobs")
    # Records no claim of this worker wrote, planted in its own in-flight hash.
    payload = '{"class":"HostileRecord","args":["back"]}'
    planted = {b"t-\xff": _record("parked", payload), b"t-bad": b"not json"}
    state.r.hset(state.key(f"pyresque:inflight:{wid}"), mapping=planted)  # type: ignore[arg-type]
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0, worker.log()
    assert state.r.lrange(state.key("queue:parked"), 0, -1) == [payload.encode()]
    [failure] = state.failed()
    assert (failure["exception"], failure["payload"]) == (MALFORMED, "not json")
    assert _inflight(state) == {}
    assert "Traceback" not in worker.log(), worker.log()


# --- the pieces, without processes ---------------------------------------------------------


def test_field_checks_cost_nothing_for_payloads_without_such_fields() -> None:
    payload = Payload.decode(b'{"class":"X","args":[1],"id":"a","prefix":"","queue_time":1.5}')
    check_fields(payload)  # no field to check: returns at once
    with pytest.raises(MalformedPayload, match='"timeout" must be a number'):
        check_fields(Payload.decode(b'{"class":"X","args":[],"timeout":0}'))


def test_outcomes_cross_the_pipe_whatever_the_result() -> None:
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    for result, shown in [
        (float("nan"), '"nan"'),
        ({"a": [1, "x"]}, '{"a":[1,"x"]}'),
        ("caf\udce9", "\"'caf\\\\udce9'\""),
        (deep, '"(a list whose repr() raised RecursionError)"'),
    ]:
        outcome = Outcome.decode(Outcome("ok", result).encode())
        assert outcome.kind == "ok"
        assert outcome.result_json() == shown
        strict_json.loads(outcome.result_json().encode())  # storable and readable


def test_an_unreadable_outcome_fails_the_job_saying_so() -> None:
    for message in [b"", b"{", b"[1]", b'{"kind":"ok"}', b'{"kind":1,"result_text":"null"}']:
        outcome = Outcome.decode(message)
        assert outcome.kind == "failed"
        assert outcome.exception == "pyresque.DirtyExit"
        assert "unreadable outcome" in outcome.error
