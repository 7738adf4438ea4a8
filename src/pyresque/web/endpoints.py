"""What each URL of the dashboard shows and does: the pages' and the JSON API's data
loaders and the actions, each reading its request parameters (no web framework here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyresque.client.resque import Resque
from pyresque.web import data as web_data
from pyresque.web import delayed as web_delayed
from pyresque.web import failures as web_failures
from pyresque.web import items as web_items
from pyresque.web import safe as web_safe
from pyresque.web import stats as web_stats

#: Jobs or failures shown per page.
PER_PAGE = 20


def int_param(params: Mapping[str, Any], name: str, default: int = 0) -> int:
    """A non-negative integer parameter (``web_safe.integer``: clamped, or BadParameter)."""
    return web_safe.integer(text_param(params, name), name, default)


def text_param(params: Mapping[str, Any], name: str) -> str:
    """A parameter as stripped text ("" if absent)."""
    value = params.get(name)
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


Loader = Callable[[Resque, Mapping[str, Any]], dict[str, Any]]

#: page name -> (template, loader of its data from the query parameters)
PAGES: dict[str, tuple[str, Loader]] = {
    "overview": ("overview.html", lambda r, p: web_data.overview_page(r)),
    "queues": ("queues.html", lambda r, p: web_data.queues_page(r, text_param(p, "q"))),
    "queue": (
        "queue.html",
        lambda r, p: web_data.queue_page(
            r, text_param(p, "name"), int_param(p, "start"), PER_PAGE, text_param(p, "q")
        ),
    ),
    "workers": ("workers.html", lambda r, p: web_data.workers_page(r)),
    "failed": (
        "failed.html",
        lambda r, p: web_failures.failed_page(r, int_param(p, "start"), PER_PAGE, _filters(p)),
    ),
    "delayed": ("delayed.html", lambda r, p: web_delayed.delayed_page(r, int_param(p, "start"))),
    "stats": ("stats.html", lambda r, p: web_stats.stats_page(r)),
}


#: JSON endpoint name -> loader: every page's data, plus search and one failure.
API: dict[str, Loader] = {
    **{name: loader for name, (_, loader) in PAGES.items()},
    "search": lambda r, p: web_data.search(
        r, text_param(p, "q"), [text_param(p, "queue")] if text_param(p, "queue") else None
    ),
    "failure": lambda r, p: web_failures.failure_detail(r, int_param(p, "index")),
}


def _filters(form: Mapping[str, Any]) -> web_failures.FailureFilter:
    return web_failures.FailureFilter.of(
        text_param(form, "queue"), text_param(form, "class"), text_param(form, "exception")
    )


def _need(form: Mapping[str, Any], name: str) -> str:
    value = text_param(form, name)
    if not value:
        raise ValueError(f"{name} is required")
    return value


def _index(form: Mapping[str, Any]) -> int:
    return int_param({"index": _need(form, "index")}, "index")


def _one(count: int) -> int:
    """A single-item action that found nothing to act on."""
    if count == 0:
        raise web_items.Stale("nothing was done: the item is gone (a worker may have taken it)")
    return count


#: action name -> what it does with the posted fields; returns how many items it touched.
ACTIONS: dict[str, Callable[[Resque, Mapping[str, Any]], int]] = {
    "remove-queue": lambda r, f: web_data.remove_queue(r, _need(f, "queue")),
    "remove-job": lambda r, f: _one(
        web_data.remove_job(
            r, _need(f, "queue"), text_param(f, "digest") or None, text_param(f, "job_id") or None
        )
    ),
    "retry-failed": lambda r, f: _one(
        web_failures.retry_failure(r, _index(f), text_param(f, "digest") or None)
    ),
    "remove-failed": lambda r, f: _one(
        web_failures.remove_failure(r, _index(f), text_param(f, "digest") or None)
    ),
    "retry-all-failed": lambda r, f: web_failures.retry_all(r, _filters(f)),
    "remove-all-failed": lambda r, f: web_failures.remove_all(r, _filters(f)),
    "clear-failed": lambda r, f: web_failures.clear_failed(r),
    "clear-retried": lambda r, f: web_failures.clear_retried(r),
}
