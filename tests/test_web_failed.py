"""The Failed page as a dense table: a text search besides the exact filters, paged on
the server, bulk actions only on the exact filters; and the one time format every page
uses (``web.format.fmt_when``)."""

from __future__ import annotations

import calendar
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pyresque import Resque
from pyresque.client.admin.failures import FailureFilter, failed_page
from pyresque.web.format import fmt_when
from test_web_support import RUBY_FAILURE, client, rq

__all__ = ["client", "rq"]


def record(n: int, error: str, cls: str = "ChargeCard", args: Any = None) -> bytes:
    item = {
        **RUBY_FAILURE,
        "payload": {"class": cls, "args": [n] if args is None else args},
        "error": error,
        "queue": "billing" if n % 2 else "mail",
    }
    return json.dumps(item).encode()


def test_text_search_finds_error_class_and_arguments_case_insensitively(rq: Resque) -> None:
    rq.redis.rpush(
        rq.keys.failed,
        record(1, "Card DECLINED by bank"),
        record(2, "timeout", "SendMail", [{"to": "renée@example.com"}]),
        record(3, "disk full"),
        record(4, "quota", "Résumé::Render"),
        b"\xffnot json",
    )

    def indexes(text: str, **exact: str) -> list[int]:
        page = failed_page(rq, filters=FailureFilter.of(text=text, **exact))
        return [f["index"] for f in page["failures"]]

    assert indexes("declined") == [0]
    assert indexes("RENÉE@") == [1]  # non-ASCII, escaped by the encoder: decoded first
    assert indexes("résumé") == [3]
    assert indexes("o", queue="mail", exception="RuntimeError") == [3, 1]
    assert indexes("timeout", queue="billing") == []
    assert indexes("no such thing") == []
    page = failed_page(rq, filters=FailureFilter.of(text="disk"))
    assert (page["matching"], page["filters"]["text"]) == (1, "disk")


def test_the_page_is_a_table_of_fifty_rows_paged_on_the_server(
    client: TestClient, rq: Resque
) -> None:
    rq.redis.rpush(rq.keys.failed, *[record(n, f"error number {n}") for n in range(120)])
    page = client.get("/failed").text
    rows = re.findall(r'<tr class="failure" data-index="(\d+)"', page)
    assert rows == [str(n) for n in range(119, 69, -1)]  # newest first
    assert page.count('<table class="failures">') == 1
    older = client.get("/failed?start=100").text
    assert re.findall(r'data-index="(\d+)"', older) == [str(n) for n in range(19, -1, -1)]
    # The text search reads on with a cursor: 50 matches, then the next page.
    found = client.get("/api/failed?q=error+number").json()
    assert (len(found["failures"]), found["next_before"]) == (50, 70)
    rest = client.get("/api/failed?q=error+number&before=70").json()
    assert [f["index"] for f in rest["failures"]][:2] == [69, 68]


def test_bulk_actions_refuse_the_text_search(client: TestClient, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, record(1, "declined"), record(2, "timeout"))
    token = client.get("/api/csrf").json()["csrf_token"]
    for action in ("retry-all-failed", "remove-all-failed"):
        response = client.post(
            f"/api/actions/{action}", json={"q": "declined"}, headers={"X-CSRF-Token": token}
        )
        assert response.status_code == 400, action
        assert "not text" in response.json()["error"]
    assert rq.failures.count() == 2
    page = client.get("/failed?q=declined").text
    assert "Bulk actions take the queue, class and exception filters" in page
    assert 'data-action="retry-all-failed"' not in page
    assert 'data-action="retry-failed"' in page  # the row actions stay


def test_rows_link_to_their_filters(client: TestClient, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, record(1, "declined"))
    page = client.get("/failed?q=decl").text
    assert 'href="/failed?queue=billing&amp;q=decl"' in page
    assert 'href="/failed?class=ChargeCard&amp;q=decl"' in page
    assert 'href="/failed?exception=RuntimeError&amp;q=decl"' in page


def test_one_time_format_whatever_the_source() -> None:
    now = calendar.timegm((2026, 1, 12, 15, 30, 0))
    iso = '<time datetime="2026-01-12T15:23:55Z" title="6m 5s ago">2026-01-12T15:23:55Z</time>'
    for written in (
        1768231435,  # epoch seconds (pyresque, queue_time)
        "2026/01/12 15:23:55 UTC",  # Ruby Resque
        "2026-01-12T10:23:55-05:00",  # php-resque
        "2026-01-12 10:23:55 -0500",  # Ruby's Time#to_s
        "2026-01-12T15:23:55Z",
    ):
        assert fmt_when(written, now=now) == iso, written
    assert fmt_when(1768231435 + 600, now=now).count("in 3m 55s") == 1
    assert 'title="2026-01-12T15:23:55Z">6m 5s ago<' in fmt_when(1768231435, True, now)
    assert fmt_when(None) == "—"
    assert fmt_when(float("nan")) == "—"
    assert fmt_when(1e300) == "—"
    assert fmt_when("<b>soon</b>") == (
        '<span class="time" title="as recorded (not a time)">&lt;b&gt;soon&lt;/b&gt;</span>'
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=80),
        st.lists(st.integers(), max_size=3),
    )
)
def test_any_value_gives_a_time_or_escaped_text(value: Any) -> None:
    shown = str(fmt_when(value))
    assert shown == "—" or shown.startswith(("<time datetime=", '<span class="time"'))
    assert "<script" not in shown
    assert "<b>" not in shown
