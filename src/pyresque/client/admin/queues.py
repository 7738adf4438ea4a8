"""Queues: their names and sizes, their jobs, search, and removing jobs and queues.

``queues_page`` and ``queue_page`` are what the dashboard's pages and its JSON API
show; ``Resque``'s queue methods (``queues``, ``size``, ``peek``, ``dequeue``, ...)
call the functions here too. Actions address list elements by content as well as
position (a ``digest`` of their bytes), so a list that changed between reading and
clicking can never make them touch the wrong item. Removing goes through
``client.removal``, which releases the removed jobs' unique locks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any, cast

import redis

from pyresque.client import removal
from pyresque.client.admin.base import Namespace, Problems, as_text, heads, lengths, members
from pyresque.client.admin.items import digest, job_view
from pyresque.jobs.job import JobRef, job_name
from pyresque.protocol import strict_json
from pyresque.protocol.connection import raw, reaching
from pyresque.protocol.payload import Payload

#: Elements read per LRANGE while scanning a queue or the failed list.
_CHUNK = 1000
#: A search stops after this many queue elements (it says so in its result).
SEARCH_LIMIT = 100_000
#: Queues listed per page of the dashboard's Queues page.
QUEUES_PER_PAGE = 50


def queue_keys(resque: Namespace, problems: Problems) -> list[tuple[str, bytes]]:
    """Every queue's name (as text) and key (as bytes: a name that is not UTF-8 still
    addresses its queue)."""
    found = problems.section(
        "the queues set", partial(members, resque.redis, resque.keys.queues), set[bytes]()
    )
    return [(as_text(m), resque.keys.queue_key(m)) for m in sorted(found)]


def queue_lengths(resque: Namespace, problems: Problems) -> list[tuple[str, bytes, int]]:
    """Every queue's name, key and length (-1: its key is not a list), measured 200
    queues per script call."""
    queues = queue_keys(resque, problems)
    found = problems.section(
        "the queues' lengths",
        partial(lengths, resque.redis, [key for _, key in queues]),
        [0] * len(queues),
    )
    return [(name, key, n) for (name, key), n in zip(queues, found, strict=True)]


def queue_summaries(
    resque: Namespace,
    now: float | None = None,
    problems: Problems | None = None,
    queues: list[tuple[str, bytes]] | None = None,
) -> list[dict[str, Any]]:
    """Every queue (or those of ``queues``: name and key) with its size and the
    enqueue time and age of its oldest job.

    The age is known for payloads that carry ``queue_time`` (php-resque and
    pyresque's default shape); Ruby-shaped payloads have no timestamp.
    """
    now = time.time() if now is None else now
    problems = Problems() if problems is None else problems
    queues = queue_keys(resque, problems) if queues is None else queues
    keys = [key for _, key in queues]
    sizes = problems.section(
        "the queues' lengths", partial(lengths, resque.redis, keys), list[int]()
    )
    found = problems.section(
        "the queues' heads", partial(heads, resque.redis, keys), list[bytes | None]()
    )
    result = []
    for i, (name, key) in enumerate(queues):
        size = max(0, sizes[i]) if sizes else 0
        if sizes and sizes[i] < 0:
            problems.append(f"{as_text(key)}: Redis refused the read (WRONGTYPE: not a list)")
        head = found[i] if found else None
        oldest = job_view(head, 0, now) if head is not None else None
        result.append(
            {
                "name": name,
                "size": size,
                "oldest_enqueued_at": oldest["enqueued_at"] if oldest else None,
                "oldest_age_seconds": oldest["age_seconds"] if oldest else None,
            }
        )
    return result


def queue_page(
    resque: Namespace, name: str, start: int = 0, per_page: int = 20, query: str = ""
) -> dict[str, Any]:
    """One page of a queue's jobs, head first, or the jobs matching ``query``."""
    problems = Problems()
    key = resque.keys.queue(name)
    pipe = resque.redis.pipeline(transaction=False)
    pipe.llen(key)
    pipe.sismember(resque.keys.queues, name)
    size, known = problems.replies(pipe, [key, resque.keys.queues])
    start = max(0, start)
    if query:
        found = search(resque, query, [name])
        jobs, scanned, truncated = found["jobs"], found["scanned"], found["truncated"]
        problems += found["problems"]
    else:
        now = time.time()
        items = problems.section(
            key,
            lambda: cast("list[bytes]", resque.redis.lrange(key, start, start + per_page - 1)),
            list[bytes](),
        )
        jobs = [job_view(raw(it), start + i, now) for i, it in enumerate(items)]
        scanned, truncated = len(jobs), False
    return {
        "queue": name,
        "known": known == 1,
        "size": size or 0,
        "start": start,
        "per_page": per_page,
        "query": query,
        "jobs": jobs,
        "scanned": scanned,
        "truncated": truncated,
        "problems": problems,
    }


def _scan_list(client: redis.Redis, key: str | bytes, limit: int) -> Iterable[tuple[int, bytes]]:
    """(index, element) of a list, read in chunks, at most ``limit`` elements."""
    offset = 0
    while offset < limit:
        chunk = client.lrange(key, offset, min(offset + _CHUNK, limit) - 1)
        for i, item in enumerate(chunk):
            yield offset + i, raw(item)
        if len(chunk) < _CHUNK:
            return
        offset += _CHUNK


def _from_tail(client: redis.Redis, key: str) -> Iterable[bytes]:
    """Every element of a list, read from its tail ``_CHUNK`` per command (one LRANGE of
    a long list blocks Redis). Counted from the tail, an element keeps its position
    while workers pop at the head, so none is missed; a push at the tail shifts what
    is left to read by one, so an element may be read twice."""
    end = -1
    while True:
        chunk = client.lrange(key, end - _CHUNK + 1, end)
        yield from (raw(item) for item in reversed(chunk))
        if len(chunk) < _CHUNK:
            return
        end -= _CHUNK


def search(resque: Namespace, query: str, queues: list[str] | None = None) -> dict[str, Any]:
    """Jobs whose id is ``query`` or whose class contains it (case-insensitive)."""
    problems = Problems()
    wanted = query.strip().lower()
    now = time.time()
    jobs: list[dict[str, Any]] = []
    scanned = 0
    truncated = False
    names = (
        queue_keys(resque, problems)
        if queues is None
        else [(name, raw(resque.keys.queue(name))) for name in queues]
    )

    def scan(name: str, key: bytes) -> int:
        found = 0
        for index, item in _scan_list(resque.redis, key, SEARCH_LIMIT):
            found += 1
            view = job_view(item, index, now)
            if wanted and (
                (view["id"] or "").lower() == wanted or wanted in view["class_name"].lower()
            ):
                jobs.append({**view, "queue": name})
        return found

    for name, key in names:
        scanned += problems.section(as_text(key), partial(scan, name, key), 0)
        truncated = truncated or scanned >= SEARCH_LIMIT
    return {
        "query": query,
        "jobs": jobs,
        "scanned": scanned,
        "truncated": truncated,
        "problems": problems,
    }


def queues_page(
    resque: Namespace, query: str = "", start: int = 0, per_page: int = QUEUES_PER_PAGE
) -> dict[str, Any]:
    """A page of queues by name, with the total pending; with ``query``, also the jobs
    in any queue that match it."""
    problems = Problems()
    every = queue_lengths(resque, problems)
    start = max(0, start)
    shown = [(name, key) for name, key, _ in every[start : start + per_page]]
    found = search(resque, query) if query.strip() else None
    return {
        "queues": queue_summaries(resque, problems=problems, queues=shown),
        "total": len(every),
        "pending": sum(max(0, n) for *_, n in every),
        "start": start,
        "per_page": per_page,
        "search": found,
        "problems": problems + (found["problems"] if found else []),
    }


def biggest(
    resque: Namespace, every: list[tuple[str, bytes, int]], count: int, problems: Problems
) -> list[dict[str, Any]]:
    """The ``count`` longest queues of ``every`` (``queue_lengths``), longest first."""
    chosen = sorted(every, key=lambda q: (-q[2], q[0]))[:count]
    return queue_summaries(resque, problems=problems, queues=[(n, k) for n, k, _ in chosen])


def remove_job(
    resque: Namespace, queue: str, job_digest: str | None = None, job_id: str | None = None
) -> int:
    """Remove one queued job, found by content digest (any payload) or by job id."""
    if not job_digest and not job_id:
        raise ValueError("give the job's digest or its id")
    if job_id and not job_digest:
        return dequeue(resque, queue, job_id=job_id)
    key = resque.keys.queue(queue)
    for _, item in _scan_list(resque.redis, key, SEARCH_LIMIT):
        if digest(item) == job_digest:
            return remove(resque, queue, [item])
    return 0


def names(resque: Namespace) -> list[str]:
    """Every queue's name (one that is not UTF-8 shows ``\\xNN`` escapes)."""
    return sorted(as_text(name) for name in members(resque.redis, resque.keys.queues))


def size(resque: Namespace, queue: str) -> int:
    return int(resque.redis.llen(resque.keys.queue(queue)))


def sizes(resque: Namespace) -> dict[str, int]:
    """Every queue's length by name, 200 queues per script call. Any bytes
    may name a queue: names that are not UTF-8 show ``\\xNN`` escapes, and a
    queue key of the wrong Redis type counts 0."""
    names = sorted(members(resque.redis, resque.keys.queues))
    found = lengths(resque.redis, [resque.keys.queue_key(name) for name in names])
    return {as_text(name): max(0, n) for name, n in zip(names, found, strict=True)}


def peek(resque: Namespace, queue: str, start: int = 0, count: int = 1) -> list[Any]:
    """Payloads at positions ``start .. start+count-1``, decoded where possible."""
    items = resque.redis.lrange(resque.keys.queue(queue), start, start + count - 1)
    return [decoded(raw(item)) for item in items]


def pop(resque: Namespace, queue: str) -> Any:
    """Pop the head of ``queue`` (not claimed: the caller owns it from now on)."""
    item = resque.redis.lpop(resque.keys.queue(queue))
    return None if item is None else decoded(raw(cast("bytes | str", item)))


def decoded(item: bytes) -> Any:
    """A queue item as JSON, or as text when it is not JSON pyresque reads (strict_json)."""
    try:
        return strict_json.loads(item)
    except strict_json.BadJSON:
        return item.decode("utf-8", "replace")


def remove_queue(resque: Namespace, queue: str) -> int:
    """Delete a queue and forget its name; returns how many jobs it held. The
    unique locks of its jobs are released."""
    with reaching(resque.redis):
        return removal.remove_queue(resque.redis, resque.keys, queue)


def remove(resque: Namespace, queue: str, items: list[bytes]) -> int:
    """Remove queued jobs by their exact bytes (each item once), releasing their
    unique locks; returns how many were removed (a job a worker took is not)."""
    with reaching(resque.redis):
        return removal.remove_items(resque.redis, resque.keys, queue, items)


def dequeue(
    resque: Namespace,
    queue: str,
    job: JobRef | None = None,
    args: list[Any] | None = None,
    job_id: str | None = None,
) -> int:
    """Remove queued jobs of a class (and, if given, exactly these args), or by id
    (``Resque.dequeue``). Each match is removed by its exact bytes, so this is safe
    while workers run: a job a worker already took is simply not found."""
    if job is None and job_id is None:
        raise ValueError("give a job class (and optional args) or a job_id")
    name = job_name(job) if job is not None else None
    matches: list[bytes] = []
    for item in _from_tail(resque.redis, resque.keys.queue(queue)):
        try:
            payload = Payload.decode(item)
        except ValueError:
            continue
        if (
            (name is None or payload.class_name == name)
            and (not args or payload.args == args)
            and (job_id is None or payload.id == job_id)
        ):
            matches.append(raw(item))
    return remove(resque, queue, matches)
