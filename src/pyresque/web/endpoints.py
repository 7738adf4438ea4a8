"""What each URL of the dashboard shows and does: the pages' and the JSON API's data
loaders and the actions, each reading its request parameters and calling the admin
layer (``client.admin``), which the CLI and ``/metrics`` share (no web framework here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyresque.client.admin import (
    bulk,
    cancel,
    delayed,
    failures,
    jobs,
    queues,
    stats,
    workers,
    workflow_pages,
)
from pyresque.client.admin.base import Stale
from pyresque.client.resque import Resque
from pyresque.web import safe as web_safe

#: Jobs shown per page.
PER_PAGE = 20
#: Failures shown per page (one table row each).
FAILURES_PER_PAGE = 50


def int_param(params: Mapping[str, Any], name: str, default: int = 0) -> int:
    """A non-negative integer parameter (``web_safe.integer``: clamped, or BadParameter)."""
    return web_safe.integer(text_param(params, name), name, default)


def _optional(params: Mapping[str, Any], name: str) -> int | None:
    """A non-negative integer parameter, or None when it is absent or empty."""
    return int_param(params, name) if text_param(params, name) else None


def text_param(params: Mapping[str, Any], name: str) -> str:
    """A parameter as stripped text ("" if absent)."""
    value = params.get(name)
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


Loader = Callable[[Resque, Mapping[str, Any]], dict[str, Any]]

#: page name -> (template, loader of its data from the query parameters)
PAGES: dict[str, tuple[str, Loader]] = {
    "overview": ("overview.html", lambda r, p: stats.overview_page(r)),
    "queues": (
        "queues.html",
        lambda r, p: queues.queues_page(r, text_param(p, "q"), int_param(p, "start")),
    ),
    "queue": (
        "queue.html",
        lambda r, p: queues.queue_page(
            r, text_param(p, "name"), int_param(p, "start"), PER_PAGE, text_param(p, "q")
        ),
    ),
    "workers": (
        "workers.html",
        lambda r, p: workers.workers_page(r, start=int_param(p, "start")),
    ),
    "failed": (
        "failed.html",
        lambda r, p: {
            **failures.failed_page(
                r, int_param(p, "start"), FAILURES_PER_PAGE, _filters(p), _optional(p, "before")
            ),
            "bulk": bulk.ops(r),
        },
    ),
    "delayed": ("delayed.html", lambda r, p: delayed.delayed_page(r, int_param(p, "start"))),
    "workflows": (
        "workflows.html",
        lambda r, p: workflow_pages.workflows_page(r, text_param(p, "batch")),
    ),
    # /jobs/<id>, or /jobs/?job=<id> from the page's form
    "job": ("job.html", lambda r, p: jobs.job_page(r, text_param(p, "id") or text_param(p, "job"))),
    "stats": (
        "stats.html",
        lambda r, p: stats.stats_page(r, _range(p), _optional(p, "end")),
    ),
}


#: JSON endpoint name -> loader: every page's data, plus search and one failure.
API: dict[str, Loader] = {
    **{name: loader for name, (_, loader) in PAGES.items()},
    "search": lambda r, p: queues.search(
        r, text_param(p, "q"), [text_param(p, "queue")] if text_param(p, "queue") else None
    ),
    "failure": lambda r, p: failures.failure_detail(r, int_param(p, "index")),
    "bulk": lambda r, p: {"ops": bulk.ops(r)},
}


def _filters(form: Mapping[str, Any]) -> failures.FailureFilter:
    return failures.FailureFilter.of(
        text_param(form, "queue"),
        text_param(form, "class"),
        text_param(form, "exception"),
        text_param(form, "q"),
    )


def _range(params: Mapping[str, Any]) -> str:
    """The Stats chart's range: one of ``stats.RANGES`` (24 hours when absent)."""
    span = text_param(params, "range") or "24h"
    if span not in stats.RANGES:
        raise web_safe.BadParameter(f"range must be one of {', '.join(stats.RANGES)}")
    return span


def _need(form: Mapping[str, Any], name: str) -> str:
    value = text_param(form, name)
    if not value:
        raise ValueError(f"{name} is required")
    return value


def _index(form: Mapping[str, Any]) -> int:
    return int_param({"index": _need(form, "index")}, "index")


def _background(resque: Resque, action: str, filters: failures.FailureFilter) -> int:
    """Start a bulk action in a thread of this process (bulk.py); the records it reads."""
    op_id = bulk.start(resque, action, filters)
    bulk.in_background(resque, op_id)
    op = bulk.get(resque, op_id)
    return int(op["total"]) if op else 0


def _resume(resque: Resque, op_id: str) -> int:
    """Resume a stalled bulk action in a thread of this process."""
    op = bulk.get(resque, op_id)
    if op is None or not op["stalled"]:
        raise Stale("that operation is not stalled (it runs, ended, or expired)")
    bulk.in_background(resque, op_id)
    return max(0, int(op["total"]) - int(op["read"]))


def _one(count: int) -> int:
    """A single-item action that found nothing to act on."""
    if count == 0:
        raise Stale("nothing was done: the item is gone (a worker may have taken it)")
    return count


#: action name -> what it does with the posted fields; returns how many items it touched.
ACTIONS: dict[str, Callable[[Resque, Mapping[str, Any]], int]] = {
    "remove-queue": lambda r, f: queues.remove_queue(r, _need(f, "queue")),
    "remove-job": lambda r, f: _one(
        queues.remove_job(
            r, _need(f, "queue"), text_param(f, "digest") or None, text_param(f, "job_id") or None
        )
    ),
    "retry-failed": lambda r, f: _one(
        failures.retry_failure(r, _index(f), text_param(f, "digest") or None)
    ),
    "remove-failed": lambda r, f: _one(
        failures.remove_failure(r, _index(f), text_param(f, "digest") or None)
    ),
    "enqueue-delayed": lambda r, f: delayed.take_item(
        r,
        int_param({"at": _need(f, "at")}, "at"),
        _need(f, "digest"),
        "enqueue",
        text_param(f, "queue") or None,
    ),
    "remove-delayed": lambda r, f: delayed.take_item(
        r,
        int_param({"at": _need(f, "at")}, "at"),
        _need(f, "digest"),
        "cancel",
        text_param(f, "queue") or None,
    ),
    "cancel-job": lambda r, f: _one(int(cancel.cancel(r, _need(f, "job_id"))["cancelled"])),
    "retry-all-failed": lambda r, f: _background(r, "retry", _filters(f)),
    "remove-all-failed": lambda r, f: _background(r, "remove", _filters(f)),
    "clear-failed": lambda r, f: failures.clear_failed(r),
    "clear-retried": lambda r, f: _background(r, "remove-retried", failures.FailureFilter()),
    "resume-bulk": lambda r, f: _resume(r, _need(f, "id")),
}
