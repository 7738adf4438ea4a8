"""The Stats page's throughput chart: ranges (1 h, 24 h, 7 d, 30 d), each in at most
240 buckets, panning, and zoom links from a bucket to the next shorter range around it."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.testclient import TestClient

from pyresque import Resque
from pyresque.client.admin.stats import CHART_POINTS, window
from pyresque.dev.testing import run_jobs
from test_web_browser import base, browser, wait
from test_web_support import WebChargeCard, client, rq

__all__ = ["base", "browser", "client", "rq"]


def write_history(rq: Resque, now: float) -> None:
    """One job per minute for the last two days, 1,000 in the current minute (the
    burst a 24-hour chart squashed), 10 per hour for the last 40 days."""
    pipe = rq.redis.pipeline(transaction=False)
    minute, hour = int(now // 60), int(now // 3600)
    for back in range(1, 2 * 24 * 60):
        pipe.set(rq.keys.history("processed", "m", minute - back), 1)
    pipe.set(rq.keys.history("processed", "m", minute), 1000)
    pipe.set(rq.keys.history("failed", "m", minute), 7)
    for back in range(0, 40 * 24):
        pipe.set(rq.keys.history("processed", "h", hour - back), 10)
    pipe.execute()


def test_each_range_has_its_buckets_and_keeps_every_count(rq: Resque) -> None:
    now = time.time()
    write_history(rq, now)
    expected = {"1h": (60, 60), "24h": (144, 600), "7d": (168, 3600), "30d": (240, 10800)}
    for span, (points, step) in expected.items():
        shown = window(rq, span)
        assert (len(shown["points"]), shown["step"]) == (points, step), span
        assert len(shown["points"]) <= CHART_POINTS
        assert shown["points"][-1]["t"] <= now < shown["points"][-1]["t"] + step, span
    last_hour = window(rq, "1h")["points"]
    assert (last_hour[-1]["processed"], last_hour[-1]["failed"]) == (1000, 7)
    assert sum(p["processed"] for p in last_hour) == 1000 + 59
    day = window(rq, "24h")
    in_day = sum(p["processed"] for p in day["points"])
    first = day["points"][0]["t"]
    assert in_day == 1000 + (int(now // 60) - first // 60)  # every minute of the window
    month = window(rq, "30d")["points"]  # the last bucket may reach into the next hours
    hours = (int(now // 3600) * 3600 - month[0]["t"]) // 3600 + 1
    assert sum(p["processed"] for p in month) == 10 * hours > 10 * (30 * 24 - 3)
    assert (window(rq, "30d")["zoom"], window(rq, "1h")["zoom"]) == ("7d", None)


def test_a_window_in_the_past_and_beyond_the_minute_history(rq: Resque) -> None:
    now = time.time()
    write_history(rq, now)
    hour_ago = window(rq, "1h", now - 3600)
    assert hour_ago["unit"] == "m"
    assert sum(p["processed"] for p in hour_ago["points"]) == 60
    assert not hour_ago["now"]
    old = window(rq, "24h", now - 5 * 86400)  # minute keys expired: hours instead
    assert (old["unit"], len(old["points"]), old["step"]) == ("h", 24, 3600)
    assert window(rq, "1h", now + 10**9)["now"]  # the future is now


def test_page_ranges_pan_and_zoom_links(client: TestClient, rq: Resque) -> None:
    write_history(rq, time.time())
    page = client.get("/stats").text
    assert 'data-range="24h"' in page
    assert re.search(r'class="active"[^>]*data-range="24h"', page)
    zooms = re.findall(r'<a href="(/stats\?range=1h&amp;end=\d+)"><rect class="hit"', page)
    assert len(zooms) == 144
    assert "per 10 minutes" in page
    hour = client.get(unescape(zooms[-1])).text
    assert "per minute" in hour
    assert '<a href="/stats?range=' not in hour.split('<svg class="chart"')[1].split("</svg>")[0]
    assert client.get("/stats?range=week").status_code == 400
    assert "range must be one of 1h, 24h, 7d, 30d" in client.get("/api/stats?range=x").text
    assert client.get("/api/stats?range=7d").json()["history"]["step"] == 3600


def test_real_runs_show_in_the_last_hour(client: TestClient, rq: Resque) -> None:
    for amount in (20, 250, 40):
        rq.enqueue("billing", WebChargeCard, {"amount": amount, "card": "4242"})
    run_jobs(rq, ["billing"])
    points = client.get("/api/stats?range=1h").json()["history"]["points"]
    assert (sum(p["processed"] for p in points), sum(p["failed"] for p in points)) == (3, 1)


@pytest.mark.usefixtures("browser")
def test_buckets_stay_wide_enough_to_point_at(browser: WebDriver, base: str, rq: Resque) -> None:
    write_history(rq, time.time())
    size = browser.get_window_size()
    browser.set_window_size(1280, 900)
    try:
        for span in ("1h", "24h", "7d", "30d"):
            browser.get(f"{base}/stats?range={span}")
            widths = browser.execute_script(
                "return Array.from(document.querySelectorAll('#history svg .hit'))"
                ".map((r) => r.getBoundingClientRect().width)"
            )
            assert widths, span
            assert min(widths) >= 4, (span, min(widths))
        browser.get(f"{base}/stats?range=30d")
        bucket = browser.find_elements(By.CSS_SELECTOR, "#history svg a")[-1]
        browser.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", bucket
        )
        wait(browser).until(lambda b: "range=7d" in b.current_url)
        active = browser.find_element(By.CSS_SELECTOR, ".ranges a.active").text
        assert active == "7d"
    finally:
        browser.set_window_size(size["width"], size["height"])
