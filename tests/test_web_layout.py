"""The dashboard's layout in real Chromium at 1,280 px: long names (queues, classes,
worker ids, exceptions, written by any producer) wrap or are cut to two lines with
the whole name in the hover title, and no table grows past its card or the page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pyresque import Resque
from test_web_browser import base, browser, wait
from test_web_support import rq

__all__ = ["base", "browser", "rq"]

pytestmark = pytest.mark.usefixtures("browser")


def long_names() -> list[str]:
    """Names no column can hold: unbroken ASCII, dotted/namespaced, CJK, emoji, mixed
    right-to-left text and markup, each a few hundred characters."""
    return [
        "q" + "x" * 260,
        "App::Billing::" + "VeryLongNamespace::" * 12 + "ChargeCard",
        "队列" * 90,
        "📬" * 80 + "mail",
        "שלום-queue-" * 20 + "<b>&",
        "worker-host-" + "a1b2c3d4" * 30,
    ]


@pytest.fixture
def at_1280(browser: WebDriver) -> Iterator[WebDriver]:
    size = browser.get_window_size()
    browser.set_window_size(1280, 900)
    try:
        yield browser
    finally:
        browser.set_window_size(size["width"], size["height"])


def seed_long_names(resque: Resque) -> list[str]:
    """Queued jobs, failures, a busy Ruby-shaped worker and a delayed item, each
    named with the long names (raw writes: Redis may hold what any producer wrote)."""
    names = long_names()
    r, keys = resque.redis, resque.keys
    now = time.time()
    for i, name in enumerate(names):
        cls = names[(i + 1) % len(names)]
        r.sadd(keys.queues, name)
        r.rpush(keys.queue(name), json.dumps({"class": cls, "args": [name], "queue_time": now}))
        failure = {
            "failed_at": "2026/01/12 15:23:55 UTC",
            "payload": {"class": cls, "args": [name]},
            "exception": names[(i + 2) % len(names)],
            "error": name,
            "backtrace": [name],
            "worker": f"{name}:1:{name}",
            "queue": name,
        }
        r.rpush(keys.failed, json.dumps(failure))
        worker = f"{name}:{100 + i}:{name}"
        r.sadd(keys.workers, worker)
        run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
        job = {"queue": name, "run_at": run_at, "payload": {"class": cls, "args": [1]}}
        r.set(keys.worker(worker), json.dumps(job))
        due = int(now) + 600 + i
        r.zadd(keys.delayed_schedule, {str(due): due})
        r.rpush(keys.delayed(due), json.dumps({"class": cls, "args": [], "queue": name}))
        counts = {"total": 3, "succeeded": 1, "failed": 1, "cancelled": 0, "created": int(now)}
        batch = {**counts, "name": name, "on_success": name, "on_complete": name, "parent": name}
        r.hset(keys.wf_batches, name, json.dumps(batch))
        r.hset(
            keys.wf_jobs,
            name,
            json.dumps({"s": "waiting", "wait": {name: True}, "dep": [name], "b": [name]}),
        )
        r.set(
            keys.result(name),
            json.dumps({"status": "failed", "exception": cls, "error": name, "backtrace": [name]}),
        )
    return names


#: What overflows (the page, or a card or table wider than its box), and every
#: cut name's title and width, read in one script (live updates swap regions).
LAYOUT = """
const over = [];
const page = document.documentElement;
if (page.scrollWidth > page.clientWidth + 1) over.push(["page", page.scrollWidth]);
for (const box of document.querySelectorAll(".card, table")) {
  if (box.scrollWidth > box.clientWidth + 1) {
    over.push([box.className || box.tagName, box.scrollWidth, box.clientWidth]);
  }
}
const wide = Array.from(document.querySelectorAll("main *"))
  .filter((e) => e.getBoundingClientRect().right > page.clientWidth + 1)
  .map((e) => e.tagName + "." + e.className);
const names = Array.from(document.querySelectorAll("main .clip"))
  .map((e) => [e.title, e.getBoundingClientRect().width]);
return [over, wide.slice(0, 5), names];
"""


PAGES = ["/", "/queues", "/workers", "/failed", "/delayed", "/workflows", "/queues/", "/jobs/"]


@pytest.mark.parametrize("path", PAGES)
def test_long_names_fit_at_1280_px(at_1280: WebDriver, base: str, rq: Resque, path: str) -> None:
    names = seed_long_names(rq)
    url = base + path + (quote(names[0], safe="") if path in ("/queues/", "/jobs/") else "")
    at_1280.get(url)
    wait(at_1280).until(lambda b: b.find_elements(By.CSS_SELECTOR, "main .clip"))
    assert at_1280.execute_script("return window.innerWidth") <= 1280
    over, wide, shown = at_1280.execute_script(LAYOUT)
    assert (over, wide) == ([], []), path
    # Every name shown cut keeps the whole of it in its title.
    assert {title for title, _ in shown} & set(names), path
    for title, width in shown:
        assert title, width
        assert width <= 1280, title


def test_the_failed_table_is_dense_and_searchable(
    at_1280: WebDriver, base: str, rq: Resque
) -> None:
    """One screen shows many failures (the cards showed three), and the search finds one."""
    records = [
        json.dumps(
            {
                "failed_at": "2026/01/12 15:23:55 UTC",
                "payload": {"class": f"Job{n % 4}", "args": [{"n": n}]},
                "exception": "RuntimeError",
                "error": f"error number {n}",
                "backtrace": [f"line {i}" for i in range(40)],
                "worker": "h:1:q",
                "queue": "q",
            }
        )
        for n in range(80)
    ]
    rq.redis.rpush(rq.keys.failed, *records)
    at_1280.get(base + "/failed")
    visible = at_1280.execute_script(
        "return Array.from(document.querySelectorAll('tr.failure'))"
        ".filter((r) => r.getBoundingClientRect().bottom <= window.innerHeight).length"
    )
    assert visible >= 15
    assert len(at_1280.find_elements(By.CSS_SELECTOR, "tr.failure")) == 50
    field = at_1280.find_element(By.NAME, "q")
    field.send_keys("NUMBER 42")
    field.submit()
    wait(at_1280).until(lambda b: "q=NUMBER+42" in b.current_url)
    (row,) = at_1280.find_elements(By.CSS_SELECTOR, "tr.failure")
    assert "error number 42" in row.text
    row.find_element(By.CSS_SELECTOR, "summary").click()  # the details open in the row
    assert "line 39" in row.find_element(By.CSS_SELECTOR, "pre.backtrace").text
