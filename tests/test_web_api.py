"""The dashboard's JSON API and pages on data written by real worker runs
(jobs run by ``run_jobs``, some failing), plus Ruby/PHP records and resque-scheduler keys."""

from __future__ import annotations

import calendar
import html
import json
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from e2e_support import wait_for
from pyresque import Resque
from pyresque.client.admin.items import digest, parse_time
from pyresque.dev.testing import run_jobs
from pyresque.scheduling.cron import Schedule
from pyresque.web.endpoints import PER_PAGE
from pyresque.web.format import fmt_ago, fmt_ms
from test_web_support import XSS, Seeded, busy_worker, client, rq, seed

__all__ = ["client", "rq"]  # the fixture, re-exported for pytest


@pytest.fixture
def seeded(rq: Resque) -> Seeded:
    return seed(rq)


def get(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def act(client: TestClient, action: str, **fields: Any) -> Any:
    """POST an action through the API with a valid CSRF token; returns the response."""
    token = get(client, "/api/csrf")["csrf_token"]
    return client.post(f"/api/actions/{action}", json=fields, headers={"X-CSRF-Token": token})


def bulk_done(client: TestClient, response: Any) -> dict[str, Any]:
    """Wait for the bulk action ``response`` started (in the app's thread) to end."""
    assert response.status_code == 200, response.text

    def newest() -> dict[str, Any] | None:
        op = get(client, "/api/bulk")["ops"][0]
        return op if op["state"] in ("done", "failed") else None

    op = wait_for(newest, 60, "the bulk action to end")
    assert op["state"] == "done", op
    return op


def test_overview_shows_counts_queues_and_throughput_of_real_runs(
    client: TestClient, seeded: Seeded
) -> None:
    data = get(client, "/api/overview")
    counts = data["counts"]
    # 15 jobs ran, 3 failed; the failed list also holds 2 foreign records and 2 bad entries.
    assert counts["processed"] == 15
    assert counts["failed_total"] == 3
    assert counts["failed"] == 7
    assert counts["pending"] == 6
    queues = {q["name"]: q for q in data["queues"]}
    assert queues["mail"]["size"] == 4
    assert 0 <= queues["mail"]["oldest_age_seconds"] < 60
    assert queues["critical"]["size"] == 1
    assert queues["critical"]["oldest_age_seconds"] is None  # a Ruby payload has no time
    assert queues["billing"]["size"] == 0
    points = data["per_minute"]
    assert len(points) == 60
    assert sum(p["processed"] for p in points) == 15
    assert sum(p["failed"] for p in points) == 3
    running = data["running"]
    assert [w["job"]["class_name"] for w in running] == ["Archive"]
    assert running[0]["kind"] == "resque"
    assert 90 <= running[0]["job"]["running_seconds"] < 200


def test_workers_page_groups_hosts_and_shows_a_busy_pyresque_worker(
    client: TestClient, seeded: Seeded, redis_url: str
) -> None:
    with busy_worker(seeded.resque, redis_url) as worker_id:
        data = get(client, "/api/workers")
        hosts = {h["host"]: h["workers"] for h in data["hosts"]}
        ruby = hosts["rubyhost"][0]
        assert ruby["kind"] == "resque"
        assert ruby["queues"] == ["critical", "archive"]
        assert (ruby["processed"], ruby["failed"]) == (1234, 5)
        assert ruby["heartbeat_age_seconds"] < 60
        ours = next(w for ws in hosts.values() for w in ws if w["id"] == worker_id)
        assert ours["kind"] == "pyresque"
        assert ours["state"] == "working"
        assert ours["job"]["class_name"] == "GenerateReport"
        assert ours["job"]["args"] == [{"month": "2026-01"}]
        assert ours["job"]["running_seconds"] < 60
        assert ours["heartbeat_age_seconds"] < 10
        assert (data["total"], data["working"]) == (2, 2)
        overview = get(client, "/api/overview")
        assert {w["job"]["class_name"] for w in overview["running"]} == {
            "Archive",
            "GenerateReport",
        }


def test_queue_pages_list_find_and_page_jobs(client: TestClient, seeded: Seeded) -> None:
    data = get(client, "/api/queues/mail")
    assert (data["size"], data["known"]) == (4, True)
    jobs = data["jobs"]
    assert [j["position"] for j in jobs] == [0, 1, 2, 3]
    assert {j["class_name"] for j in jobs} == {"App\\Jobs\\SendWelcomeEmail"}
    assert jobs[0]["args"] == [{"user_id": 100}]
    assert jobs[3]["id"] == seeded.xss_job_id
    assert jobs[3]["args"][0]["name"] == XSS
    assert all(j["enqueued_at"] and j["digest"] for j in jobs)

    by_id = get(client, f"/api/queues/mail?q={seeded.xss_job_id}")["jobs"]
    assert [j["id"] for j in by_id] == [seeded.xss_job_id]
    by_class = get(client, "/api/queues/mail?q=welcome")["jobs"]
    assert len(by_class) == 4
    everywhere = get(client, "/api/search?q=resize")
    assert [(j["queue"], j["args"]) for j in everywhere["jobs"]] == [("images", [77, 640])]
    assert get(client, "/api/queues/mail?start=3")["jobs"][0]["position"] == 3

    ruby = get(client, "/api/queues/critical")["jobs"][0]
    assert (ruby["class_name"], ruby["id"], ruby["enqueued_at"]) == ("Archive", None, None)


def test_failed_list_is_newest_first_with_foreign_and_unparsable_records(
    client: TestClient, seeded: Seeded
) -> None:
    data = get(client, "/api/failed")
    assert (data["total"], data["matching"]) == (7, 7)
    records = data["failures"]
    assert [r["index"] for r in records] == [6, 5, 4, 3, 2, 1, 0]
    garbage, null, php, ruby = records[:4]
    assert not garbage["parsed"]
    assert garbage["raw"] == "\\xffgarbage"  # bytes that are not UTF-8 show escaped
    assert garbage["reason"] == "not valid UTF-8 (byte 0: b'\\xff')"
    assert (null["parsed"], null["raw"]) == (False, "null")
    assert null["reason"] == "null with no failed_at or exception is not a failure record"
    assert (php["class_name"], php["queue"], php["exception"]) == (
        "App\\Jobs\\Mail",
        "mail",
        "InvalidArgumentException",
    )
    assert php["failed_at_epoch"] == calendar.timegm((2026, 1, 12, 20, 23, 55))
    assert ruby["failed_at_epoch"] == calendar.timegm((2026, 1, 12, 15, 23, 55))
    assert ruby["backtrace"][0] == "/app/jobs/archive.rb:12:in `perform'"
    ours = records[4:]
    assert {r["class_name"] for r in ours} == {"RenderTemplate", "ChargeCard"}
    charge = next(r for r in ours if r["class_name"] == "ChargeCard")
    assert charge["exception"] == "test_web_support.PaymentDeclined"
    assert charge["error"] == "card ending 4242 declined"
    assert charge["backtrace"]
    assert charge["worker"].endswith(":mail,images,billing,default")

    filtered = get(client, "/api/failed?class=ChargeCard")
    assert (filtered["total"], filtered["matching"]) == (7, 2)
    assert {r["args"][0]["amount"] for r in filtered["failures"]} == {250, 900}
    assert get(client, "/api/failed?queue=mail&exception=InvalidArgumentException")["matching"] == 1
    facets = {f["value"]: f["count"] for f in data["facets"]["exception"]}
    assert facets["test_web_support.PaymentDeclined"] == 2
    assert get(client, "/api/failed?start=5")["failures"][0]["index"] == 1
    detail = get(client, f"/api/failed/{charge['index']}")
    assert detail["digest"] == charge["digest"]
    assert client.get("/api/failed/99").status_code == 404


def test_retry_remove_and_clear_failures(client: TestClient, seeded: Seeded) -> None:
    rq = seeded.resque
    records = get(client, "/api/failed?class=RenderTemplate")["failures"]
    index, record_digest = records[0]["index"], records[0]["digest"]
    response = act(client, "retry-failed", index=index, digest=record_digest)
    assert response.json() == {"ok": True, "action": "retry-failed", "count": 1}
    assert rq.size("default") == 1
    record = rq.failures.get(index)
    assert record is not None
    assert record.retried_at
    # The retried job runs again in a real worker, and fails again.
    result = run_jobs(rq, "default")
    assert (result.processed, result.failed) == (1, 1)
    assert rq.failures.count() == 8
    # A digest that no longer matches is refused: the list changed meanwhile.
    stale = act(client, "remove-failed", index=index, digest=record_digest)
    assert stale.status_code == 409
    assert bulk_done(client, act(client, "clear-retried"))["changed"] == 1

    ruby = next(f for f in rq.failures if f.class_name == "Archive")
    assert (
        act(client, "remove-failed", index=ruby.index, digest=digest(ruby.raw)).json()["count"] == 1
    )
    assert all(f.class_name != "Archive" for f in rq.failures)

    # Unparsable entries cannot be retried, but can be removed.
    null = next(f for f in rq.failures if f.raw == b"null")
    refused = act(client, "retry-failed", index=null.index, digest=digest(null.raw))
    assert refused.status_code == 400
    assert (
        act(client, "remove-failed", index=null.index, digest=digest(null.raw)).status_code == 200
    )

    left = rq.failures.count()
    assert left == 5
    assert act(client, "clear-failed").json()["count"] == left
    assert rq.failures.count() == 0


def test_bulk_retry_and_remove_by_filter(client: TestClient, seeded: Seeded) -> None:
    rq = seeded.resque
    retried = act(client, "retry-all-failed", **{"class": "ChargeCard"})
    assert retried.json()["count"] == 7  # the records it reads, in the background
    assert bulk_done(client, retried)["changed"] == 2
    assert rq.size("billing") == 2
    assert sorted(j["args"][0]["amount"] for j in rq.peek("billing", 0, 10)) == [250, 900]
    result = run_jobs(rq, "billing")  # a real worker: both are declined again
    assert (result.processed, result.failed) == (2, 2)
    assert get(client, "/api/failed?class=ChargeCard")["matching"] == 4
    removed = act(client, "remove-all-failed", exception="test_web_support.PaymentDeclined")
    assert bulk_done(client, removed)["changed"] == 4
    assert get(client, "/api/failed")["total"] == 5


def test_delete_a_job_and_a_queue(client: TestClient, seeded: Seeded) -> None:
    rq = seeded.resque
    job = get(client, "/api/queues/mail")["jobs"][1]
    assert act(client, "remove-job", queue="mail", digest=job["digest"]).json()["count"] == 1
    left = [j["args"][0] for j in rq.peek("mail", 0, 10)]
    assert left[:2] == [{"user_id": 100}, {"user_id": 102}]
    assert len(left) == 3
    assert act(client, "remove-job", queue="mail", digest=job["digest"]).status_code == 409
    by_id = act(client, "remove-job", queue="mail", job_id=seeded.xss_job_id)
    assert by_id.json()["count"] == 1
    assert rq.size("mail") == 2
    ruby = get(client, "/api/queues/critical")["jobs"][0]
    assert act(client, "remove-job", queue="critical", digest=ruby["digest"]).json()["count"] == 1
    assert act(client, "remove-job", queue="mail").status_code == 400
    assert act(client, "remove-queue", queue="mail").json()["count"] == 2
    assert "mail" not in rq.queues()
    assert act(client, "no-such-action").status_code == 404


def test_delayed_and_schedules_from_resque_scheduler_keys(
    client: TestClient, seeded: Seeded
) -> None:
    data = get(client, "/api/delayed")
    assert data["total_timestamps"] == 1
    due = data["timestamps"][0]
    assert due["size"] == 2
    assert 3500 < due["in_seconds"] <= 3600
    assert [(j["class_name"], j["queue"], j["args"]) for j in due["jobs"]] == [
        ("SendReminder", "mail", [{"user_id": 7}]),
        ("SendReminder", "mail", [{"user_id": 8}]),
    ]
    (schedule,) = data["schedules"]
    assert (schedule["name"], schedule["cron"], schedule["class_name"]) == (
        "nightly_cleanup",
        "0 3 * * *",
        "Cleanup",
    )
    assert data["master_lock"] is None
    assert data["cron"] == {"leader": None, "schedules": []}


def test_pyresque_cron_schedules_show_on_the_delayed_page(client: TestClient, rq: Resque) -> None:
    k = rq.keys
    schedule = Schedule(name="cleanup", job="Cleanup", queue="low", cron="*/5 * * * *", args=[1])
    rq.redis.hset(k.cron_schedules, "cleanup", json.dumps(schedule.to_dict()))
    state = {"last_run": 1768249200, "next_run": 1768249500, "outcome": "enqueued"}
    rq.redis.hset(k.cron_state, "cleanup", json.dumps(state))
    rq.redis.sadd(k.cron_paused, "cleanup")
    rq.redis.set(k.cron_leader, "h1:42")
    data = get(client, "/api/delayed")["cron"]
    assert data["leader"] == "h1:42"
    (shown,) = data["schedules"]
    assert (shown["name"], shown["when"], shown["class_name"], shown["queue"]) == (
        "cleanup",
        "*/5 * * * *",
        "Cleanup",
        "low",
    )
    assert (shown["paused"], shown["last_run"], shown["next_run"]) == (True, 1768249200, 1768249500)
    page = client.get("/delayed").text
    assert "pyresque cron" in page
    assert "*/5 * * * *" in page
    assert "2026-01-12T20:25:00Z" in page


def test_queue_names_with_odd_characters(client: TestClient, rq: Resque) -> None:
    name = "mail/high priority <b>&"  # pyresque refuses it; another producer may write it
    rq.redis.sadd(rq.keys.queues, name)
    rq.redis.rpush(rq.keys.queue(name), json.dumps({"class": "Mail", "args": [1]}))
    assert 'href="/queues/mail%2Fhigh%20priority%20%3Cb%3E%26"' in client.get("/queues").text
    page = client.get("/queues/mail%2Fhigh%20priority%20%3Cb%3E%26")
    assert "mail/high priority &lt;b&gt;&amp;" in page.text
    assert get(client, "/api/queues/mail%2Fhigh%20priority%20%3Cb%3E%26")["size"] == 1


@pytest.mark.parametrize("name", [".", ".."])
def test_a_queue_and_a_job_named_as_a_dot_segment_have_their_pages(
    client: TestClient, rq: Resque, name: str
) -> None:
    """Browsers and HTTP clients drop "." and ".." path segments (and "%2e"): the links
    to such a queue and job name them in the query, and lead to their pages."""
    rq.redis.sadd(rq.keys.queues, name)
    payload = {"class": "Mail", "args": [1], "id": name}
    for _ in range(PER_PAGE + 1):  # a second page: the pager keeps the name
        rq.redis.rpush(rq.keys.queue(name), json.dumps(payload))
    listing = client.get("/queues").text
    link = re.search(r'href="(/queues/\?name=[^"]*)"', listing)
    assert link, "no link to the queue's page by its name in the query"
    page = client.get(html.unescape(link.group(1)))
    assert f"{PER_PAGE + 1}" in page.text
    assert "Mail" in page.text
    assert 'name="name" value="' in page.text  # the search form names it too
    following = re.search(r'href="([^"]*start=[^"]*)" rel="next"', page.text)
    assert following
    assert "name=" in following.group(1)
    assert "Mail" in client.get(html.unescape(following.group(1))).text
    found = re.search(r'href="(/jobs/\?job=[^"]*)"', page.text)
    assert found, "no link to the job's page by its id in the query"
    job = html.unescape(found.group(1))
    assert get(client, "/api" + job)["id"] == name
    assert client.get(job).status_code == 200


def test_empty_namespace_renders_every_page(client: TestClient) -> None:
    assert get(client, "/api/delayed")["timestamps"] == []
    for path in ("/", "/queues", "/queues/nothing", "/workers", "/failed", "/delayed", "/stats"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert "No queues yet" in client.get("/").text
    assert "No delayed jobs" in client.get("/delayed").text
    assert "No failed jobs" in client.get("/failed").text


def test_stats_show_durations_by_class_and_redis_info(client: TestClient, seeded: Seeded) -> None:
    data = get(client, "/api/stats")
    assert len(data["per_minute"]) == 24 * 60
    assert len(data["per_hour"]) == 30 * 24
    assert sum(p["processed"] for p in data["per_hour"]) == 15
    classes = {c["class_name"]: c for c in data["classes"]}
    charge = classes["ChargeCard"]
    assert (charge["processed"], charge["failed"]) == (4, 2)
    assert sum(b["count"] for b in charge["buckets"]) == 4
    assert charge["buckets"][-1]["le"] == "+Inf"
    resize = classes["ResizeImage"]
    assert resize["mean_ms"] >= 2  # each one slept 2 to 8 ms
    assert isinstance(resize["p99_ms"], (int, float))
    assert resize["p99_ms"] >= 5  # a bucket bound at or above the 2 to 8 ms slept
    assert data["redis"]["used_memory"] > 0
    assert data["redis"]["connected_clients"] >= 1
    assert data["redis"]["keys"] > 0


def test_pages_escape_job_data(client: TestClient, seeded: Seeded) -> None:
    for path in ("/queues/mail", "/failed", "/queues?q=welcome"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "could not be parsed" in client.get("/failed").text


def test_json_index_lists_endpoints(client: TestClient) -> None:
    data = get(client, "/api")
    assert "/api/failed" in data["endpoints"]
    assert "/api/actions/retry-failed" in data["actions"]


def test_time_parsing_and_formatting() -> None:
    assert parse_time("2026/01/12 15:23:55 UTC") == calendar.timegm((2026, 1, 12, 15, 23, 55))
    assert parse_time("2026-01-12T15:23:55-05:00") == calendar.timegm((2026, 1, 12, 20, 23, 55))
    assert parse_time("2026-01-12T20:23:55Z") == calendar.timegm((2026, 1, 12, 20, 23, 55))
    assert parse_time("2026-01-12 15:23:55 -0500") == calendar.timegm((2026, 1, 12, 20, 23, 55))
    assert parse_time("Mon Jan 12 15:23:55 EST 2026") is None  # an ambiguous zone
    assert parse_time("1768249435") == 1768249435
    assert parse_time(None) is None
    assert (fmt_ago(42), fmt_ago(192), fmt_ago(7500), fmt_ago(90000)) == (
        "42s",
        "3m 12s",
        "2h 5m",
        "1d 1h",
    )
    assert (fmt_ms(2.5), fmt_ms(5.0), fmt_ms(250), fmt_ms(2500), fmt_ms("+Inf")) == (
        "2.5 ms",
        "5 ms",
        "250 ms",
        "2.5 s",
        "> 60 s",
    )
    assert json.dumps(fmt_ms(None)) == '"\\u2014"'
