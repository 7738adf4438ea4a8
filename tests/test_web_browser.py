"""The dashboard in real headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

The app runs with uvicorn in a thread on a free loopback port, on data from real
worker runs. Dialogs are recorded instead of shown: a script added before every
page load wraps ``alert``/``confirm``/``prompt`` (logging to sessionStorage), so an
executed injection would be seen, and confirmation prompts answer "yes". Waits use
WebDriverWait, never sleeps.

Set ``PYRESQUE_SCREENSHOTS=docs/screenshots`` to save a screenshot of every page
(the history charts then get synthetic traffic for the past day and month).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from e2e_support import wait_for
from pyresque import Resque, group, step
from pyresque.dev.testing import run_jobs
from pyresque.web.app import OPEN, create_app
from test_web_support import (
    XSS,
    Seeded,
    WebResizeImage,
    backfill_history,
    busy_worker,
    declare_cron,
    rq,
    seed,
    served,
)

__all__ = ["rq"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.environ.get("PYRESQUE_SCREENSHOTS")
RECORD_DIALOGS = """
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => {
    const log = JSON.parse(sessionStorage.getItem("dialogs") || "[]");
    log.push([name, String(message)]);
    sessionStorage.setItem("dialogs", JSON.stringify(log));
    return true;
  };
}
"""

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_DIALOGS})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def seeded(rq: Resque) -> Seeded:
    return seed(rq)


@pytest.fixture
def base(redis_url: str, rq: Resque, browser: WebDriver) -> Iterator[str]:
    with served(create_app(redis_url, namespace=rq.namespace, auth=OPEN, poll_seconds=0.2)) as url:
        yield url
    browser.delete_all_cookies()


def wait(browser: WebDriver, timeout: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(
        browser, timeout, poll_frequency=0.02, ignored_exceptions=[StaleElementReferenceException]
    )


def click(browser: WebDriver, by: str, selector: str) -> None:
    """Click an element, looking it up again if a live update replaced it meanwhile."""

    def attempt(b: WebDriver) -> bool:
        b.find_element(by, selector).click()
        return True

    wait(browser).until(attempt)


def tab_is_active(tab: str) -> Callable[[WebDriver], bool]:
    def check(b: WebDriver) -> bool:
        return b.find_element(By.CSS_SELECTOR, "nav a.active").text.startswith(tab)

    return check


def dialogs(browser: WebDriver) -> list[list[str]]:
    """Dialogs opened in this tab and origin, across page loads (kept in sessionStorage)."""
    script = "return JSON.parse(sessionStorage.getItem('dialogs') || '[]')"
    return cast("list[list[str]]", browser.execute_script(script))


def severe_console_errors(browser: Chrome) -> list[dict[str, Any]]:
    """Console errors, which include CSP violations (an inline script or style)."""
    entries = browser.execute("getLog", {"type": "browser"})["value"]  # get_log, typed
    return [e for e in entries if e["level"] == "SEVERE"]


def flash(browser: WebDriver, expected: str) -> str:
    """The message of the page an action redirected to, once that page has loaded."""

    def shown(b: WebDriver) -> str | None:
        text = b.find_element(By.CSS_SELECTOR, ".flash").text
        return text if expected in text else None

    text = wait(browser).until(shown)
    assert text is not None
    return text


def card(browser: WebDriver, text: str) -> WebElement:
    """The failure row that mentions ``text``."""
    for element in browser.find_elements(By.CSS_SELECTOR, "tr.failure"):
        if text in element.text:
            return element
    raise AssertionError(f"no failure row mentions {text!r}")


def test_every_page_renders(browser: Chrome, base: str, seeded: Seeded, redis_url: str) -> None:
    if SHOTS:
        backfill_history(seeded.resque)
        declare_cron(seeded.resque)
    pages = [
        ("overview", "Overview", "Running now"),
        ("queues", "Queues", "mail"),
        ("workers", "Workers", "rubyhost"),
        ("failed", "Failed", "could not be parsed"),
        ("delayed", "Delayed", "SendReminder"),
        ("workflows", "Workflows", "thumbnails"),
        ("stats", "Stats", "Job duration by class"),
    ]
    flow = seeded.resque.enqueue_workflow(
        group(
            *[step("thumbs", WebResizeImage, n, 100 + n) for n in range(3)],
            on_complete=step("thumbs", WebResizeImage, 9, 10),
            name="thumbnails",
        )
    )
    run_jobs(seeded.resque, "thumbs", mode="inline")
    with busy_worker(seeded.resque, redis_url):
        browser.get(base + "/")
        severe_console_errors(browser)  # forget what the first load logged
        for name, tab, expected in pages:
            click(browser, By.PARTIAL_LINK_TEXT, tab)  # navigate by the tabs
            wait(browser).until(tab_is_active(tab))
            assert expected in browser.find_element(By.TAG_NAME, "main").text, name
            assert severe_console_errors(browser) == [], name
            screenshot(browser, name)
        click(browser, By.PARTIAL_LINK_TEXT, "Queues")
        click(browser, By.LINK_TEXT, "mail")
        wait(browser).until(lambda b: "Queue mail" in b.find_element(By.TAG_NAME, "h1").text)
        screenshot(browser, "queue")
        browser.get(f"{base}/jobs/{flow.ends[0]}")
        wait(browser).until(lambda b: "Workflow" in b.find_element(By.TAG_NAME, "main").text)
        screenshot(browser, "job")
        # The overview and the workers page show the worker busy on its job.
        click(browser, By.PARTIAL_LINK_TEXT, "Workers")
        wait(browser).until(
            lambda b: "GenerateReport" in b.find_element(By.ID, "workers-live").text
        )
    assert dialogs(browser) == []


def screenshot(browser: Chrome, name: str) -> None:
    """Save the whole page (not just the window) as ``<SHOTS>/<name>.png``."""
    if not SHOTS:
        return
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    (Path(SHOTS) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def test_retry_and_remove_one_failure(browser: WebDriver, base: str, seeded: Seeded) -> None:
    rq = seeded.resque
    browser.get(base + "/failed")
    card(browser, "unknown template").find_element(
        By.CSS_SELECTOR, "[data-action=retry-failed]"
    ).click()
    flash(browser, "queued again")
    assert [j["class"] for j in rq.peek("default", 0, 5)] == ["RenderTemplate"]
    assert "retried" in card(browser, "unknown template").text

    card(browser, "disk full").find_element(By.CSS_SELECTOR, "[data-action=remove-failed]").click()
    flash(browser, "Failure removed")
    assert "disk full" not in browser.find_element(By.TAG_NAME, "main").text
    assert all(f.error != "disk full" for f in rq.failures)
    assert rq.failures.count() == 6


def test_bulk_retry_by_filter(browser: WebDriver, base: str, seeded: Seeded) -> None:
    rq = seeded.resque
    browser.get(base + "/failed")
    field = browser.find_element(By.NAME, "class")
    field.send_keys("ChargeCard")
    field.submit()
    wait(browser).until(
        lambda b: "2 of 7 match" in b.find_element(By.CSS_SELECTOR, ".filters").text
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.failure")) == 2
    browser.find_element(By.CSS_SELECTOR, "[data-action=retry-all-failed]").click()
    flash(browser, "Retrying the matching jobs in the background")
    assert dialogs(browser) == [["confirm", "Retry every failure matching this filter (2)?"]]

    def done() -> bool:
        return sorted(j["args"][0]["amount"] for j in rq.peek("billing", 0, 5)) == [250, 900]

    wait_for(done, 30, "the background retry")
    browser.refresh()  # the page lists the action, done
    row = browser.find_element(By.CSS_SELECTOR, ".bulk-ops tr[data-op]")
    assert row.get_attribute("data-state") == "done"
    assert "class=ChargeCard" in browser.current_url  # the filter is kept


def test_delete_a_job(browser: WebDriver, base: str, seeded: Seeded) -> None:
    rq = seeded.resque
    browser.get(base + "/queues/mail")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-job-id='{seeded.xss_job_id}']")
    row.find_element(By.CSS_SELECTOR, "[data-action=remove-job]").click()
    assert flash(browser, "Job deleted") == "Job deleted."
    assert rq.size("mail") == 3
    assert not browser.find_elements(By.CSS_SELECTOR, f"tr[data-job-id='{seeded.xss_job_id}']")
    assert dialogs(browser)[0][0] == "confirm"


def test_markup_in_job_data_is_shown_as_text(browser: WebDriver, base: str, seeded: Seeded) -> None:
    for path in ("/queues/mail", "/failed", "/queues?q=welcome"):
        browser.get(base + path)
        assert XSS in browser.find_element(By.TAG_NAME, "main").text, path
        assert dialogs(browser) == [], path  # alert() never ran
        assert browser.execute_script("return window.__xss === undefined"), path
        assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_a_post_without_the_csrf_token_is_refused(
    browser: WebDriver, base: str, seeded: Seeded
) -> None:
    rq = seeded.resque
    browser.get(base + "/failed")
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", credentials: "same-origin"})
          .then(r => done(r.status));""",
        base + "/api/actions/clear-failed",
    )
    assert status == 403
    # A real form whose token was removed is refused too.
    form = browser.find_element(By.CSS_SELECTOR, "form[data-confirm^='Remove all']")
    browser.execute_script("arguments[0].querySelector('[name=csrf_token]').remove()", form)
    form.find_element(By.TAG_NAME, "button").click()
    wait(browser).until(lambda b: "CSRF" in b.find_element(By.TAG_NAME, "main").text)
    assert rq.failures.count() == 7


def test_live_regions_update_without_a_reload(
    browser: WebDriver, base: str, seeded: Seeded
) -> None:
    browser.get(base + "/")
    browser.execute_script("window.__same_page = true")
    seeded.resque.enqueue("fresh-queue", "Anything", {"n": 1})
    # Updates come every few seconds, each a fetch and render of the whole page: a loaded
    # machine makes that slow, hence more room than the other waits.
    wait(browser, 90).until(lambda b: "fresh-queue" in b.find_element(By.ID, "overview-live").text)
    assert browser.execute_script("return window.__same_page === true")
    browser.find_element(By.ID, "live-toggle").click()  # pause
    assert browser.find_element(By.ID, "live-toggle").text == "paused"
    browser.execute_script("localStorage.removeItem('pyresque-live')")


def test_enqueue_now_and_delete_a_delayed_job(
    browser: WebDriver, base: str, seeded: Seeded
) -> None:
    rq = seeded.resque
    browser.get(base + "/delayed")

    def row(user: int) -> WebElement:
        for element in browser.find_elements(By.CSS_SELECTOR, "tr[data-digest]"):
            if f'"user_id": {user}' in element.text:
                return element
        raise AssertionError(f"no delayed row for user {user}")

    row(7).find_element(By.CSS_SELECTOR, "[data-action=enqueue-delayed]").click()
    assert flash(browser, "queued now") == "Delayed job queued now."
    queued = [j for j in rq.peek("mail", 0, 20) if j["class"] == "SendReminder"]
    assert [j["args"] for j in queued] == [[{"user_id": 7}]]
    row(8).find_element(By.CSS_SELECTOR, "[data-action=remove-delayed]").click()
    assert flash(browser, "deleted") == "Delayed job deleted."
    assert dialogs(browser) == [["confirm", "Delete this delayed job?"]]
    assert rq.redis.zcard(rq.keys.delayed_schedule) == 0
    assert "No delayed jobs" in browser.find_element(By.TAG_NAME, "main").text
