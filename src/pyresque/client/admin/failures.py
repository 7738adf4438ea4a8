"""Failures: records as resque-web shows them, filtered, and retried or removed.

The dashboard's Failed page (``failed_page``) and its actions address a record by
index *and* content digest, so a list that changed since it was shown is never acted
on at the wrong place; ``pyresque failed`` addresses records by index, oldest first,
and acts on every record a filter matches with a progress callback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pyresque.client.admin.base import ITEM_LIMIT, Namespace, Problems, Stale, as_text, shorten
from pyresque.client.admin.items import args_text, decode, digest, display_class, parse_time
from pyresque.protocol.failure import Failure, Progress
from pyresque.protocol.failure_sweep import may_hold, needles

#: Failure facets (the filter suggestions) come from this many of the newest records.
FACET_SAMPLE = 500
#: Records a filtered page reads at most (it says where the next page reads on).
SCAN_BUDGET = 1000
#: Lines of a failure's backtrace shown.
BACKTRACE_LIMIT = 200
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
_JSON_KINDS[type(None)] = "null"


@dataclass(frozen=True)
class FailureFilter:
    """Exact-match filters (the predicate the bulk actions use too) and ``text``, a
    case-insensitive search of a record's queue, class, exception, error, worker and
    arguments (pages only: the bulk actions take the exact filters)."""

    queue: str | None = None
    class_name: str | None = None
    exception: str | None = None
    text: str | None = None

    @classmethod
    def of(
        cls, queue: str = "", class_name: str = "", exception: str = "", text: str = ""
    ) -> FailureFilter:
        return cls(queue or None, class_name or None, exception or None, text or None)

    @property
    def active(self) -> bool:
        return any((self.queue, self.class_name, self.exception, self.text))

    def matches(self, failure: Failure) -> bool:
        return failure.matches(self.queue, self.class_name, self.exception) and (
            not self.text or self.text.casefold() in _searched(failure)
        )

    def picker(self) -> Callable[[int, bytes], bool]:
        """Whether a record (index, bytes) matches: only records that can match are
        decoded (``needles``; the text, lower-cased, when every encoder writes it as
        it is)."""
        wanted = needles(self.queue, self.class_name, self.exception)
        plain = needles(self.text.lower()) if self.text and self.text.isascii() else []
        return lambda index, item: (
            may_hold(item, wanted)
            and (not plain or may_hold(item.lower(), plain))
            and self.matches(Failure.decode(index, item))
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "queue": self.queue or "",
            "class": self.class_name or "",
            "exception": self.exception or "",
            "text": self.text or "",
        }


def _searched(failure: Failure) -> str:
    """What the text filter searches in a record, case-folded."""
    fields = (failure.queue, failure.class_name, failure.exception, failure.error, failure.worker)
    return "\n".join((*fields, args_text(failure.args))).casefold()


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
    resque: Namespace,
    start: int = 0,
    per_page: int = 20,
    filters: FailureFilter | None = None,
    before: int | None = None,
) -> dict[str, Any]:
    """One page of failures, newest first, with filter suggestions from the newest
    records. Unfiltered, ``start`` counts from the newest record. Filtered, the
    records before index ``before`` (the newest when None) are read, at most
    ``SCAN_BUDGET`` of them: the page holds the first ``per_page`` matches,
    ``next_before`` is where the next page reads on from (None at the oldest), and
    ``matching`` counts the matches when everything was read (else None)."""
    problems = Problems()
    filters = filters or FailureFilter()
    start = max(0, start)
    total = problems.section(resque.keys.failed, resque.failures.count, 0)
    facets = problems.section("the newest failures", partial(_facets, resque), _no_facets())

    def read() -> tuple[list[Failure], int | None, int | None]:
        if filters.active:
            return _filtered(resque, filters, before, per_page)
        # no filter: read just the page
        last = total - 1 - start
        first = max(0, last - per_page + 1)
        page = resque.failures.list(first, last - first + 1) if last >= 0 else []
        page.reverse()
        return page, total, None

    empty: tuple[list[Failure], int | None, int | None] = ([], 0, None)
    shown, count, next_before = problems.section("the failed list", read, empty)
    return {
        "total": total,
        "matching": count,
        "start": start,
        "before": before,
        "next_before": next_before,
        "per_page": per_page,
        "filters": filters.to_dict(),
        "failures": [failure_view(f) for f in shown],
        "facets": {
            name: [{"value": v, "count": n} for v, n in sorted(c.items()) if v]
            for name, c in facets.items()
        },
        "problems": problems,
    }


def _no_facets() -> dict[str, Counter[str]]:
    return {"queue": Counter(), "class": Counter(), "exception": Counter()}


def _facets(resque: Namespace) -> dict[str, Counter[str]]:
    """How often each queue, class and exception occurs in the newest records."""
    facets = _no_facets()
    for failure in resque.failures.list(-FACET_SAMPLE, FACET_SAMPLE):
        if failure.parsed:
            facets["queue"][failure.queue] += 1
            facets["class"][failure.class_name] += 1
            facets["exception"][failure.exception] += 1
    return facets


def _filtered(
    resque: Namespace, filters: FailureFilter, before: int | None, per_page: int
) -> tuple[list[Failure], int | None, int | None]:
    """A filtered page (see ``failed_page``): the matches, their count if known, and
    where to read on from."""
    found = resque.failures.scan(
        filters.picker(),
        start=before,
        want=SCAN_BUDGET,
        budget=SCAN_BUDGET,
    )
    shown = [Failure.decode(index, item) for index, item in found.found[:per_page]]
    if len(found.found) > per_page:
        next_before: int | None = found.found[per_page][0] + 1
    else:
        next_before = found.next
    everything = before is None and found.next is None
    return shown, len(found.found) if everything else None, next_before


def find_failure(resque: Namespace, index: int, record_digest: str | None) -> Failure:
    """The record at ``index`` if its digest still matches, else wherever it moved to
    (records move toward the head when older ones are removed: the ``SCAN_BUDGET``
    records before it are searched)."""
    failure = resque.failures.get(index)
    if failure is not None and (record_digest is None or digest(failure.raw) == record_digest):
        return failure
    if record_digest is not None:
        found = resque.failures.scan(
            lambda _, item: digest(item) == record_digest,
            start=index + 1,
            want=1,
            budget=SCAN_BUDGET,
        )
        if found.found:
            return Failure.decode(*found.found[0])
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
    return int(resque.failures.remove_record(find_failure(resque, index, record_digest)))


def matching(
    resque: Namespace, filters: FailureFilter, offset: int = 0, limit: int = 20
) -> tuple[list[Failure], int | None]:
    """Up to ``limit`` records the filters match, oldest first from index ``offset``
    (each with its index), and the index to read on from (None at the end)."""
    found = resque.failures.scan(
        filters.picker(),
        offset,
        newest_first=False,
        want=limit,
        budget=2**62,
    )
    return [Failure.decode(index, item) for index, item in found.found], found.next


def retry_at(resque: Namespace, index: int) -> bool:
    """Requeue the record at ``index`` (marked ``retried_at``); ValueError if it holds
    no job to retry."""
    return resque.failures.requeue(index)


def remove_at(resque: Namespace, index: int) -> bool:
    return resque.failures.remove(index)


def exact(filters: FailureFilter) -> FailureFilter:
    """``filters``, refused (ValueError) when they hold a text search."""
    if filters.text:
        raise ValueError("a bulk action takes the queue, class and exception filters, not text")
    return filters


def retry_all(resque: Namespace, filters: FailureFilter, progress: Progress | None = None) -> int:
    filters = exact(filters)
    return resque.failures.requeue_all(
        filters.queue, filters.class_name, filters.exception, progress
    )


def remove_all(resque: Namespace, filters: FailureFilter, progress: Progress | None = None) -> int:
    filters = exact(filters)
    return resque.failures.remove_all(
        filters.queue, filters.class_name, filters.exception, progress=progress
    )


def clear_failed(resque: Namespace) -> int:
    return resque.failures.clear()


def clear_retried(resque: Namespace) -> int:
    return resque.failures.clear_retried()
