"""The dashboard on hostile Redis data and hostile request parameters: every page and
API endpoint answers (never 500), shows what it can, escapes everything and keeps huge
values short. Hand-picked cases first, then a Hypothesis property over generated
values of any bytes, JSON shape and Redis type written to every key the dashboard reads.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pyresque import Resque
from pyresque.client.admin import workers as admin_workers
from pyresque.dev.testing import delete_namespace
from pyresque.protocol.keys import Keys
from pyresque.web.app import ACTIONS
from test_web_support import client, rq

__all__ = ["client", "rq"]

MARK = "<script>alert('pwned')</script>"
WORKER = "evilhost:66:q"
DUE = 2_000_000_000
PAGES = ["/", "/queues", "/queues/q", "/workers", "/failed", "/delayed", "/stats"]
ENDPOINTS = [
    *PAGES,
    "/queues?q=a",
    "/failed?class=A",
    "/api",
    "/api/overview",
    "/api/queues",
    "/api/queues/q",
    "/api/workers",
    "/api/failed",
    "/api/failed/0",
    "/api/delayed",
    "/api/stats",
    "/api/search?q=a",
    "/metrics",
]
DEEP = b"[" * 5000 + b"]" * 5000


VOID = {"meta", "link", "input", "br", "img", "hr", "wbr", "area", "base", "col", "source"}
SVG_LEAVES = {"line", "polygon", "polyline", "rect"}  # written self-closed in the charts


class InertHTML(HTMLParser):
    """Checks a page: tags balanced, no script but the dashboard's own, no event handler
    attribute, no ``javascript:`` URL: so no value from Redis became markup."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        assert tag != "script" or (values.get("src") or "").startswith("/static/app.js"), tag
        assert not [name for name, _ in attrs if name.startswith("on")], (tag, attrs)
        assert not any((v or "").lower().startswith("javascript:") for v in values.values())
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in VOID | SVG_LEAVES, tag

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], (tag, self.open[-5:])
        self.open.pop()


def assert_inert_html(text: str) -> None:
    parser = InertHTML()
    parser.feed(text)
    parser.close()
    assert parser.open == [], parser.open


def fetch_everything(client: TestClient) -> dict[str, Any]:
    """Every page and endpoint: none answers 500, pages are whole documents with the
    marker escaped, no answer is huge. Returns the JSON endpoints' data."""
    found = {}
    for path in ENDPOINTS:
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code, response.text)
        assert len(response.content) < 1_000_000, (path, len(response.content))
        if path == "/metrics":
            assert response.text.startswith("# HELP"), response.text
        elif path.startswith("/api"):  # JSON carries the text as it is, never as HTML
            assert response.headers["content-type"] == "application/json", path
            found[path] = response.json()
        else:
            assert MARK not in response.text, path
            assert_inert_html(response.text)
    return found


def test_a_deeply_nested_job_is_shown_as_malformed_beside_the_good_ones(
    client: TestClient, rq: Resque
) -> None:
    rq.enqueue("q", "Good", {"n": 1})
    rq.push("q", {"class": "Bad"})
    rq.redis.rpush(rq.keys.queue("q"), b'{"class":"Deep","args":' + DEEP + b"}", b"[NaN]")
    rq.enqueue("q", "Good", {"n": 2})
    data = fetch_everything(client)
    jobs = data["/api/queues/q"]["jobs"]
    assert [j["class_name"] for j in jobs] == ["Good", "Bad", "", "", "Good"]
    assert "nested deeper than 100 levels" in jobs[2]["malformed"]
    assert "NaN is not a JSON number" in jobs[3]["malformed"]
    assert data["/api/queues"]["queues"][0]["size"] == 5
    assert "nested deeper" in client.get("/queues/q").text


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (b"12abc", 12),  # Ruby's to_i: the leading integer
        (b" 7", 7),
        (b"1.5", 1),
        (b"abc", 0),
        (b"-3", -3),
        (b"9" * 5000, 2**63 - 1),  # beyond any counter: clamped
        (b"\xff\xfe", 0),
    ],
)
def test_counters_are_read_as_ruby_reads_them(
    client: TestClient, rq: Resque, stored: bytes, shown: int
) -> None:
    for key in (rq.keys.stat("processed"), rq.keys.stat("failed"), rq.keys.recovered):
        rq.redis.set(key, stored)
    data = fetch_everything(client)
    for path in ("/api/overview", "/api/stats"):
        counts = data[path]["counts"]
        assert (counts["processed"], counts["failed_total"], counts["recovered"]) == (shown,) * 3
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("query", "start"),
    [("", 0), ("?start=3", 3), ("?start=-1", 0), ("?start=99999999999999999999999", 2**53)],
)
def test_integer_parameters_are_clamped(
    client: TestClient, rq: Resque, query: str, start: int
) -> None:
    for i in range(5):
        rq.enqueue("q", "Job", {"n": i})
        rq.redis.rpush(rq.keys.failed, json.dumps({"failed_at": "x", "exception": "E"}))
    for path in ("/api/queues/q", "/api/failed", "/api/delayed"):
        response = client.get(path + query)
        assert response.status_code == 200, response.text
        assert response.json()["start"] == start
    for path in ("/queues/q", "/failed", "/delayed"):
        assert client.get(path + query).status_code == 200


@pytest.mark.parametrize("value", ["abc", "1e99", "1.5", "--1", "٣", "0x10"])
def test_a_parameter_that_is_not_an_integer_gets_400_saying_so(
    client: TestClient, value: str
) -> None:
    for path in (f"/api/queues/q?start={value}", f"/api/failed/{value}"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"].startswith("Bad request: ")
        assert "must be a whole number" in response.json()["error"]
    page = client.get(f"/failed?start={value}")
    assert page.status_code == 400
    assert "must be a whole number" in page.text


def test_a_failure_index_beyond_the_list_is_404(client: TestClient, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, json.dumps({"failed_at": "x", "exception": "E"}))
    assert client.get("/api/failed/0").json()["exception"] == "E"
    for index in ("1", "99999999999999999999999"):
        response = client.get(f"/api/failed/{index}")
        assert response.status_code == 404
        assert "no failure record" in response.json()["error"]


def test_an_action_with_a_huge_index_changes_nothing(client: TestClient, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, json.dumps({"failed_at": "x", "exception": "E"}))
    token = client.get("/api/csrf").json()["csrf_token"]
    for index in ("99999999999999999999999", "abc"):
        response = client.post(
            "/api/actions/remove-failed", json={"index": index}, headers={"X-CSRF-Token": token}
        )
        assert response.status_code in (400, 409), response.text
    assert rq.failures.count() == 1


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"queue":"\\ud800"}', b"[NaN]", b"\xff", b"{"]
)
def test_an_action_with_an_unusable_json_body_is_refused(
    client: TestClient, rq: Resque, body: bytes
) -> None:
    rq.enqueue("q", "Job", {})
    token = client.get("/api/csrf").json()["csrf_token"]
    headers = {"X-CSRF-Token": token, "content-type": "application/json"}
    response = client.post("/api/actions/remove-queue", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "queue is required"
    assert rq.size("q") == 1


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_an_action_on_keys_of_the_wrong_type_is_refused_or_done(
    client: TestClient, rq: Resque, action: str
) -> None:
    token = client.get("/api/csrf").json()["csrf_token"]
    fields = {"queue": "q", "index": "0", "digest": "x", "job_id": "x", "at": "100", "id": "x"}
    for as_json in (True, False):
        rq.redis.delete(rq.keys.queue("q"), rq.keys.failed, rq.keys.delayed(100), rq.keys.bulk("x"))
        rq.redis.sadd(rq.keys.queues, "q")
        rq.redis.hset(rq.keys.queue("q"), "a", "b")
        rq.redis.set(rq.keys.failed, "x")
        rq.redis.set(rq.keys.delayed(100), "x")
        rq.redis.set(rq.keys.bulk("x"), "x")
        if as_json:
            response = client.post(
                f"/api/actions/{action}", json=fields, headers={"X-CSRF-Token": token}
            )
            assert response.status_code in (200, 409), response.text
            error = response.json().get("error", "")
            # resume-bulk names an operation, and there is none with id "x": a 409 that says so.
            gone = action == "resume-bulk" and "not stalled" in error
            assert response.status_code == 200 or "WRONGTYPE" in error or gone, error
        else:
            page = client.post(
                f"/actions/{action}", data={**fields, "csrf_token": token}, follow_redirects=False
            )
            assert page.status_code == 303
            location = page.headers["location"]
            assert (
                "error=refused" in location
                or "done=" in location
                or (action == "resume-bulk" and "error=stale" in location)
            )


def test_keys_of_the_wrong_redis_type_are_named_and_the_rest_is_shown(
    client: TestClient, rq: Resque
) -> None:
    rq.enqueue("good", "Job", {})
    rq.redis.sadd(rq.keys.queues, "bad")
    rq.redis.hset(rq.keys.queue("bad"), "a", "b")  # a hash where a list belongs
    for key in (rq.keys.failed, rq.keys.stat("processed"), rq.keys.pause_all):
        rq.redis.hset(key, "a", "b")
    rq.redis.set(rq.keys.delayed_schedule, "x")
    rq.redis.set(rq.keys.class_stats, "x")
    data = fetch_everything(client)
    overview = data["/api/overview"]
    assert {q["name"]: q["size"] for q in overview["queues"]} == {"bad": 0, "good": 1}
    assert overview["counts"]["processed"] == 0
    problems = " ".join(overview["problems"])
    assert rq.keys.queue("bad") in problems
    assert "WRONGTYPE" in problems
    assert data["/api/failed"]["problems"]
    assert data["/api/delayed"]["problems"]
    assert "Some data could not be read" in client.get("/").text


def test_text_that_is_not_utf8_is_shown_escaped(client: TestClient, rq: Resque) -> None:
    rq.redis.sadd(rq.keys.queues, b"caf\xe9")
    rq.redis.rpush(rq.keys.queue("").encode() + b"caf\xe9", b'{"class":"A","args":[]}')
    data = fetch_everything(client)
    assert {q["name"]: q["size"] for q in data["/api/queues"]["queues"]} == {"caf\\xe9": 1}


def test_a_queue_named_with_a_newline_has_its_page(client: TestClient, rq: Resque) -> None:
    rq.redis.sadd(rq.keys.queues, "a\nb")  # pyresque refuses the name; Ruby's push does not
    rq.redis.rpush(rq.keys.queue("a\nb"), b'{"class":"Named","args":[1]}')
    for path in ("/queues/", "/api/queues/"):
        response = client.get(path + urllib.parse.quote("a\nb", safe=""))
        assert response.status_code == 200, response.text
        assert "Named" in response.text


def test_huge_items_show_a_prefix_and_their_size(client: TestClient, rq: Resque) -> None:
    big = "x" * 3_000_000
    rq.enqueue("q", "Big", {"blob": big})
    rq.redis.rpush(rq.keys.failed, json.dumps({"failed_at": "x", "exception": "E" * 10**6}))
    rq.redis.rpush(rq.keys.failed, b"y" * 2_000_000)
    rq.redis.set(rq.keys.worker(WORKER), json.dumps({"payload": {"class": "W", "args": [big]}}))
    rq.redis.sadd(rq.keys.workers, WORKER)
    data = fetch_everything(client)
    job = data["/api/queues/q"]["jobs"][0]
    assert (job["class_name"], job["args"]) == ("Big", None)
    assert job["size"] > 3_000_000
    assert "characters in all" in job["args_text"]
    failures = data["/api/failed"]["failures"]
    assert "characters in all" in failures[0]["raw"]
    assert "characters in all" in failures[1]["exception"]


def test_delayed_page_survives_any_timestamp_and_schedule(client: TestClient, rq: Resque) -> None:
    r, p = rq.redis, rq.keys.prefix
    r.zadd(rq.keys.delayed_schedule, {"inf": float("inf"), "huge": 1e300, str(DUE): DUE})
    r.rpush(rq.keys.delayed(DUE), b'{"class":"Later","args":[],"queue":"q"}', DEEP, b"\xff")
    r.hset(f"{p}persistent_schedules", mapping={"a": DEEP, "b": '{"every":[1e400]}'})
    r.hset(rq.keys.cron_schedules, mapping={"c": '{"every":"x","job":[1]}'})
    r.hset(rq.keys.cron_state, mapping={"c": '{"last_run":"x","next_run":1e300}'})
    r.set(rq.keys.cron_leader, b"\xffleader")
    data = fetch_everything(client)["/api/delayed"]
    [stamp] = data["timestamps"]
    assert [j["class_name"] for j in stamp["jobs"]] == ["Later", "", ""]
    assert stamp["jobs"][0]["queue"] == "q"
    assert "not a number was skipped" in " ".join(data["problems"])
    assert data["cron"]["leader"] == "\\xffleader" or data["problems"]


def test_a_reader_failing_unexpectedly_is_logged_and_the_rest_shown(
    client: TestClient,
    rq: Resque,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rq.enqueue("q", "Job", {})

    def broken(resque: Resque, *ids: Any) -> list[Any]:
        raise RuntimeError("a bug in a reader")

    monkeypatch.setattr(admin_workers, "list_workers", broken)  # fault injection
    with caplog.at_level(logging.ERROR, logger="pyresque.web"):
        for _ in range(3):
            overview = client.get("/api/overview").json()
    assert overview["queues"][0]["size"] == 1
    assert overview["problems"] == [
        "the workers: could not be read (RuntimeError: a bug in a reader)"
    ]
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1  # the same failure again is not logged again at once
    assert "Traceback" in caplog.text
    assert "a bug in a reader" in caplog.text
    assert "could not be read" in client.get("/workers").text


# --- the property: anything written anywhere the dashboard reads ------------------------

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.just(MARK),
)
FIELDS = ["class", "args", "id", "queue", "queue_time", "payload", "run_at", "failed_at"]
FIELDS += ["exception", "error", "backtrace", "worker", "every", "cron", "job", MARK]
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner),
    max_leaves=12,
)
TEXT = st.text(max_size=8) | st.just(MARK)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


#: The shapes the dashboard reads: a job, a failure record, a worker's current job.
JOB = st.fixed_dictionaries(
    {"class": TEXT, "args": st.lists(JSON, max_size=3)},
    optional={"queue_time": LEAVES, "id": LEAVES, "attempts": LEAVES, "queue": TEXT},
)
FAILURE = st.fixed_dictionaries(
    {"failed_at": LEAVES, "exception": TEXT, "payload": JOB | JSON},
    optional={"error": TEXT, "queue": TEXT, "worker": TEXT, "backtrace": JSON},
)
WORKING = st.fixed_dictionaries({"queue": TEXT, "run_at": LEAVES, "payload": JOB | JSON})
RAW = st.one_of(
    (JOB | FAILURE | WORKING | JSON).map(_dumps),
    st.binary(max_size=24),
    st.sampled_from(
        [
            *(b"NaN", b"[1e400]", b'{"class":"A","args":[NaN]}', DEEP, b"9" * 5000, b"12abc"),
            *(b'"\\ud800"', b"-1", b"1e999", b"\xff\xfe", MARK.encode()),
        ]
    ),
)
SCORES = st.floats(allow_nan=False) | st.sampled_from([DUE, 0, -1])
KINDS = ["string", "list", "hash", "set", "zset"]


def _keys(k: Keys) -> list[tuple[str, str]]:
    """Every key the dashboard reads, with the Redis type it should have."""
    p, minute = k.prefix, int(time.time() // 60)
    strings = [k.stat("processed"), k.stat("failed"), k.recovered, k.worker(WORKER)]
    strings += [k.worker_started(WORKER), k.stat("processed", WORKER), k.pause_all]
    strings += [k.history("processed", "m", minute), k.cron_leader]
    strings += [f"{p}{p}resque_scheduler_master_lock"]
    hashes = [k.heartbeats, k.class_stats, f"{p}persistent_schedules", f"{p}schedules"]
    hashes += [f"{p}delayed:last_enqueued_at", k.cron_schedules, k.cron_state]
    return [
        *((key, "string") for key in strings),
        *((key, "hash") for key in hashes),
        *((key, "list") for key in (k.failed, k.queue("q"), k.delayed(DUE))),
        *((key, "set") for key in (k.queues, k.workers, k.cron_paused)),
        *((key, "zset") for key in (k.leases, k.delayed_schedule)),
    ]


KEY_NAMES = {key: i for i, (key, _) in enumerate(_keys(Keys.for_namespace("n")))}
#: (key index, Redis type or "usual", values): mostly the type the key should have.
WRITES = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(KEY_NAMES) - 1),
        st.sampled_from(["usual"] * 3 + KINDS),
        st.lists(st.tuples(RAW, RAW, SCORES), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=6,
)


def _write(rq: Resque, key: str, kind: str, values: list[tuple[bytes, bytes, float]]) -> None:
    r = rq.redis
    r.delete(key)
    if kind == "string":
        r.set(key, values[0][0])
    elif kind == "list":
        r.rpush(key, *(v for v, _, _ in values))
    elif kind == "hash":
        r.hset(key, mapping={f: v for v, f, _ in values})
    elif kind == "set":
        r.sadd(key, *(v for v, _, _ in values))
    else:
        r.zadd(key, {v: s for v, _, s in values})


def _marked(key: str, value: Any, field: str = MARK) -> tuple[int, str, list[Any]]:
    """A write of the marker where a page shows it (examples always tried)."""
    return (KEY_NAMES[f"n:{key}"], "usual", [(_dumps(value), field.encode(), DUE)])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=WRITES)
@example(writes=[_marked("queue:q", {"class": MARK, "args": [MARK], "id": MARK})])
@example(writes=[_marked("failed", {"failed_at": MARK, "exception": MARK, "error": MARK})])
# A failure whose job id is not a string (it made the id's link raise in quote()).
@example(writes=[_marked("failed", {"exception": MARK, "payload": {"class": "", "id": True}})])
@example(writes=[_marked("worker:" + WORKER, {"queue": MARK, "payload": {"class": MARK}})])
@example(writes=[_marked(f"delayed:{DUE}", {"class": MARK, "args": [], "queue": MARK})])
@example(writes=[_marked("pyresque:cron:schedules", {"job": MARK, "every": 1, "queue": MARK})])
@example(writes=[_marked("pyresque:classes", 1, f"{MARK}:processed")])
@example(writes=[_marked("persistent_schedules", {"class": MARK, "description": MARK})])
def test_no_redis_data_breaks_any_page(
    client: TestClient, rq: Resque, writes: list[tuple[int, str, list[tuple[bytes, bytes, float]]]]
) -> None:
    delete_namespace(rq)
    # What makes the readers look at the keys below: a queue, a worker, a due time.
    rq.redis.sadd(rq.keys.queues, "q")
    rq.redis.sadd(rq.keys.workers, WORKER)
    rq.redis.zadd(rq.keys.delayed_schedule, {str(DUE): DUE})
    rq.redis.hset(rq.keys.cron_schedules, "c", b'{"job":"J","every":60}')
    keys = _keys(rq.keys)
    for index, kind, values in writes:
        key, usual = keys[index]
        _write(rq, key, usual if kind == "usual" else kind, values)
    fetch_everything(client)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(max_size=30)
    | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    | st.sampled_from(["1e99", "-1", "99999999999999999999999", "0x1", "\u0661", " 7 ", "+3"])
)
def test_no_request_parameter_breaks_any_endpoint(client: TestClient, value: str) -> None:
    quoted = urllib.parse.quote(value, safe="")
    for path in (
        f"/api/queues/q?start={quoted}",
        f"/failed?start={quoted}&queue={quoted}",
        f"/delayed?start={quoted}",
        f"/api/failed/{quoted}",
        f"/queues/{quoted}?q={quoted}",
        f"/?done=clear-failed&n={quoted}",
    ):
        response = client.get(path)
        assert response.status_code in (200, 400, 404), (path, response.text)
    token = client.get("/api/csrf").json()["csrf_token"]
    for action in ("remove-failed", "retry-failed", "remove-job"):
        fields = {"index": value, "digest": value, "queue": value, "job_id": value}
        response = client.post(
            f"/api/actions/{action}", json=fields, headers={"X-CSRF-Token": token}
        )
        assert response.status_code in (200, 400, 409), (action, response.text)
