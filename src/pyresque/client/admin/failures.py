"""Failures: records as resque-web shows them, filtered, and retried or removed.

The dashboard's Failed page (``failed_page``) and its actions address a record by
index *and* content digest, so a list that changed since it was shown is never acted
on at the wrong place; ``pyresque failed`` addresses records by index, oldest first,
and acts on every record a filter matches with a progress callback.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from pyresque.client.admin.base import ITEM_LIMIT, Namespace, Problems, Stale, as_text, shorten
from pyresque.client.admin.items import args_text, decode, digest, display_class, parse_time
from pyresque.protocol.failure import Failure, Progress

#: Failure facets (the filter suggestions) are computed when the list is this small.
FACET_LIMIT = 20_000
#: Lines of a failure's backtrace shown.
BACKTRACE_LIMIT = 200
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
_JSON_KINDS[type(None)] = "null"


@dataclass(frozen=True)
class FailureFilter:
    """Exact-match filters, the same predicate the bulk actions use."""

    queue: str | None = None
    class_name: str | None = None
    exception: str | None = None

    @classmethod
    def of(cls, queue: str = "", class_name: str = "", exception: str = "") -> FailureFilter:
        return cls(queue or None, class_name or None, exception or None)

    @property
    def active(self) -> bool:
        return any((self.queue, self.class_name, self.exception))

    def matches(self, failure: Failure) -> bool:
        return failure.matches(self.queue, self.class_name, self.exception)

    def to_dict(self) -> dict[str, str]:
        return {
            "queue": self.queue or "",
            "class": self.class_name or "",
            "exception": self.exception or "",
        }


def failure_view(failure: Failure) -> dict[str, Any]:
    """A failure record as the pages show it; an unreadable one keeps its raw text."""
    view: dict[str, Any] = {
        "index": failure.index,
        "digest": digest(failure.raw),
        "parsed": failure.parsed,
    }
    if not failure.parsed:
        value, problem = decode(failure.raw)
        view["raw"] = shorten(as_text(failure.raw))
        kind = _JSON_KINDS.get(type(value), "a number")
        view["reason"] = problem or f"{kind} with no failed_at or exception is not a failure record"
        return view
    payload = failure.payload if isinstance(failure.payload, dict) else {}
    huge = len(failure.raw) > ITEM_LIMIT
    lines = failure.backtrace
    if len(lines) > BACKTRACE_LIMIT:
        lines = [*lines[:BACKTRACE_LIMIT], f"… ({len(lines) - BACKTRACE_LIMIT:,} more lines)"]
    view.update(
        failed_at=failure.failed_at,
        failed_at_epoch=parse_time(failure.failed_at),
        queue=failure.queue,
        class_name=display_class(failure.class_name, failure.args),
        payload_class=failure.class_name,
        args=None if huge else failure.args,
        args_text=shorten(args_text(failure.args)),
        payload=None if huge else failure.payload,
        payload_text=shorten(
            as_text(failure.raw)
            if huge
            else json.dumps(failure.payload, ensure_ascii=False, indent=2, default=str)
        ),
        job_id=payload.get("id"),
        exception=failure.exception,
        error=failure.error,
        backtrace=lines,
        worker=failure.worker,
        retried_at=failure.retried_at,
    )
    return view


def failed_page(
    resque: Namespace, start: int = 0, per_page: int = 20, filters: FailureFilter | None = None
) -> dict[str, Any]:
    """One page of failures, newest first, optionally filtered; with filter suggestions."""
    problems = Problems()
    filters = filters or FailureFilter()
    start = max(0, start)
    total = problems.section(resque.keys.failed, resque.failures.count, 0)
    facets: dict[str, Counter[str]] = {
        "queue": Counter(),
        "class": Counter(),
        "exception": Counter(),
    }

    def read() -> tuple[list[Failure], int]:
        if filters.active or total <= FACET_LIMIT:
            matching: list[Failure] = []
            for failure in resque.failures:
                if failure.parsed:
                    facets["queue"][failure.queue] += 1
                    facets["class"][failure.class_name] += 1
                    facets["exception"][failure.exception] += 1
                if filters.matches(failure):
                    matching.append(failure)
            matching.reverse()
            return matching[start : start + per_page], len(matching)
        # a long list and no filter: read just the page
        last = total - 1 - start
        first = max(0, last - per_page + 1)
        page = resque.failures.list(first, last - first + 1) if last >= 0 else []
        page.reverse()
        return page, total

    shown, count = problems.section("the failed list", read, (list[Failure](), 0))
    return {
        "total": total,
        "matching": count,
        "start": start,
        "per_page": per_page,
        "filters": filters.to_dict(),
        "failures": [failure_view(f) for f in shown],
        "facets": {
            name: [{"value": v, "count": n} for v, n in sorted(c.items()) if v]
            for name, c in facets.items()
        },
        "problems": problems,
    }


def find_failure(resque: Namespace, index: int, record_digest: str | None) -> Failure:
    """The record at ``index`` if its digest still matches, else wherever it moved to."""
    failure = resque.failures.get(index)
    if failure is not None and (record_digest is None or digest(failure.raw) == record_digest):
        return failure
    if record_digest is not None:
        for other in resque.failures:
            if digest(other.raw) == record_digest:
                return other
    raise Stale("that failure record is gone or changed; nothing was done")


def failure_detail(resque: Namespace, index: int) -> dict[str, Any]:
    problems = Problems()
    failure = problems.section(f"failure {index}", partial(resque.failures.get, index), None)
    if problems:
        return {"index": index, "parsed": False, "problems": problems}
    if failure is None:
        raise Stale(f"there is no failure record at index {index}")
    return {**failure_view(failure), "problems": problems}


def retry_failure(resque: Namespace, index: int, record_digest: str | None = None) -> int:
    """Requeue one failure (marks it ``retried_at``, as resque-web does); 1 or 0."""
    failure = find_failure(resque, index, record_digest)
    if not failure.parsed:
        raise ValueError("this record could not be parsed, so it cannot be retried")
    # The record is passed as read, so the Lua script checks index *and* content.
    return int(resque.failures.requeue_record(failure))


def remove_failure(resque: Namespace, index: int, record_digest: str | None = None) -> int:
    failure = find_failure(resque, index, record_digest)
    return int(resque.redis.lrem(resque.keys.failed, 1, failure.raw))  # type: ignore[arg-type]


def matching(resque: Namespace, filters: FailureFilter) -> list[Failure]:
    """Every record the filters match, oldest first (each with its index)."""
    return [f for f in resque.failures if filters.matches(f)]


def retry_at(resque: Namespace, index: int) -> bool:
    """Requeue the record at ``index`` (marked ``retried_at``); ValueError if it holds
    no job to retry."""
    return resque.failures.requeue(index)


def remove_at(resque: Namespace, index: int) -> bool:
    return resque.failures.remove(index)


def retry_all(resque: Namespace, filters: FailureFilter, progress: Progress | None = None) -> int:
    return resque.failures.requeue_all(
        filters.queue, filters.class_name, filters.exception, progress
    )


def remove_all(resque: Namespace, filters: FailureFilter, progress: Progress | None = None) -> int:
    return resque.failures.remove_all(
        filters.queue, filters.class_name, filters.exception, progress=progress
    )


def clear_failed(resque: Namespace) -> int:
    return resque.failures.clear()


def clear_retried(resque: Namespace) -> int:
    return resque.failures.clear_retried()
