"""The producer API: ``Resque``, with the names Ruby and PHP users know.

``enqueue`` follows php-resque (``args`` is one piece of data, wrapped as
``[args]``); ``enqueue_to`` follows Ruby (``*args`` are positional). Both write
with one atomic Lua call (enqueue.lua): queue list, queue set, status and the
wake-up token for idle workers, all or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis

from pyresque import scripts
from pyresque.connection import connect, describe, raw, text, unavailable
from pyresque.events import Events
from pyresque.events import events as default_events
from pyresque.failure import Failures
from pyresque.job import DontCreate, Job, JobFunction, JobRef, Registry, job_name
from pyresque.job import registry as default_registry
from pyresque.keys import DEFAULT_NAMESPACE, Keys
from pyresque.payload import Dialect, Payload, dumps
from pyresque.status import JobStatus, Status, waiting_packet

#: Payloads per enqueue.lua call in ``enqueue_many`` (Lua's unpack has a limit).
_CHUNK = 1000


@dataclass(frozen=True)
class Enqueued:
    """One job to enqueue, with its options (``enqueue_many`` takes a list of these).

    ``args`` is the payload's argument list: ``[data]`` for php-resque style,
    the positional arguments for Ruby style. ``timeout`` (seconds) overrides the
    job class's timeout; ``at_front`` pushes to the head of the queue.
    """

    queue: str
    job: JobRef
    args: list[Any]
    track_status: bool = False
    prefix: str = ""
    at_front: bool = False
    timeout: float | None = None

    @property
    def batch_key(self) -> tuple[str, bool, bool]:
        return (self.queue, self.track_status, self.at_front)


class Resque:
    """A connection to one Resque namespace.

    ``redis`` is a URL, a ``redis.Redis`` client, or None for ``REDIS_URL`` /
    ``REDIS_BACKEND`` / localhost. ``dialect`` chooses the payload shape written:
    php-resque's (with an id, so status tracking works; the default) or Ruby's.
    With ``strict=True`` only registered job names can be enqueued.
    """

    def __init__(
        self,
        redis: str | redis.Redis | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        dialect: Dialect | str = Dialect.PHP,
        registry: Registry | None = None,
        events: Events | None = None,
        strict: bool = False,
    ) -> None:
        self.redis = connect(redis)
        self.namespace = namespace
        self.keys = Keys.for_namespace(namespace)
        self.dialect = Dialect(dialect)
        self.registry = registry or default_registry
        self.events = events or default_events
        self.strict = strict
        self.failures = Failures(self.redis, self.keys)

    def __repr__(self) -> str:
        return f"Resque({self.redis!r}, namespace={self.namespace!r})"

    # --- enqueueing -----------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        job: JobRef,
        args: Any = None,
        track_status: bool = False,
        *,
        prefix: str = "",
        at_front: bool = False,
        timeout: float | None = None,
    ) -> str | None:
        """Enqueue as php-resque does: the job gets ``args`` as ``self.args``.

        Returns the job id, or None when a ``before_enqueue`` hook vetoed it.
        """
        return self._enqueue(Enqueued(queue, job, [args], track_status, prefix, at_front, timeout))

    def enqueue_to(
        self,
        queue: str,
        job: JobRef,
        *args: Any,
        track_status: bool = False,
        at_front: bool = False,
        timeout: float | None = None,
    ) -> str | None:
        """Enqueue as Ruby's ``Resque.enqueue_to`` does: ``args`` are positional."""
        return self._enqueue(Enqueued(queue, job, list(args), track_status, "", at_front, timeout))

    def enqueue_job(self, job: type[Job] | JobFunction, *args: Any) -> str | None:
        """Enqueue positional ``args`` on the job class's own ``queue``."""
        job_class = job.job_class if isinstance(job, JobFunction) else job
        if not job_class.queue:
            raise ValueError(f"{job_class.resque_name} has no default queue; use enqueue_to")
        return self.enqueue_to(job_class.queue, job, *args)

    def _enqueue(self, item: Enqueued) -> str | None:
        payload = self._prepare(item)
        if payload is None:
            return None
        with self._connection():
            scripts.run(self.redis, "enqueue", *self._enqueue_call(item, [payload]))
        self._after_enqueue(item, payload)
        return payload.id

    def enqueue_many(self, jobs: Iterable[Enqueued]) -> list[str | None]:
        """Enqueue many jobs in one round trip (chunks of 1,000 per Lua call, pipelined);
        returns their ids in order (None where a hook vetoed one)."""
        pipe = self.redis.pipeline(transaction=False)
        ids: list[str | None] = []
        done: list[tuple[Enqueued, Payload]] = []
        batch: list[Payload] = []
        first: Enqueued | None = None

        def flush() -> None:
            if batch and first:
                scripts.run(pipe, "enqueue", *self._enqueue_call(first, batch))
            batch.clear()

        for item in jobs:
            payload = self._prepare(item)
            ids.append(payload.id if payload else None)
            if payload is None:
                continue
            if first is None or first.batch_key != item.batch_key or len(batch) >= _CHUNK:
                flush()
                first = item
            batch.append(payload)
            done.append((item, payload))
        flush()
        with self._connection():
            pipe.execute()
        for item, payload in done:
            self._after_enqueue(item, payload)
        return ids

    def _prepare(self, item: Enqueued) -> Payload | None:
        if not item.queue:
            raise ValueError("a queue name is required")
        name = job_name(item.job)
        if self.strict and name not in self.registry:
            raise LookupError(f"no job class is registered under {name!r} (strict mode)")
        dialect = Dialect.PHP if item.track_status or item.prefix else self.dialect
        payload = Payload.build(name, item.args, dialect, prefix=item.prefix)
        if item.timeout is not None:
            payload.extra["timeout"] = item.timeout
        payload.encode()  # raises TypeError naming a value that is not JSON
        job_class = self._job_class(item.job)
        try:
            if job_class and job_class.before_enqueue(item.queue, item.args) is False:
                return None
            hooks = self.events.trigger("before_enqueue", name, item.args, item.queue, payload.id)
            if False in hooks:
                return None
        except DontCreate:
            return None
        return payload

    def _enqueue_call(self, item: Enqueued, payloads: list[Payload]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of enqueue.lua for payloads that share ``item``'s batch key."""
        keys = [
            self.keys.queues,
            self.keys.queue(item.queue),
            self.keys.wake(item.queue),
            self.keys.queues_changed,
        ]
        if item.track_status:
            keys += [self.keys.status(p.id or "", p.prefix) for p in payloads]
        args = [item.queue, waiting_packet(), "head" if item.at_front else "tail"]
        return keys, args + [p.encode() for p in payloads]

    def _after_enqueue(self, item: Enqueued, payload: Payload) -> None:
        job_class = self._job_class(item.job)
        if job_class:
            job_class.after_enqueue(item.queue, payload.args, payload.id)
        self.events.trigger(
            "after_enqueue", payload.class_name, payload.args, item.queue, payload.id
        )

    def _job_class(self, job: JobRef) -> type[Job] | None:
        if isinstance(job, JobFunction):
            return job.job_class
        if isinstance(job, str):
            return self.registry.get(job) if job in self.registry else None
        return job

    @contextmanager
    def _connection(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise unavailable(self.redis, exc) from exc

    # --- raw queue access -----------------------------------------------------

    def push(self, queue: str, item: dict[str, Any]) -> None:
        """Push a raw payload, as ``Resque.push`` does (no hooks, no id added)."""
        keys = [
            self.keys.queues,
            self.keys.queue(queue),
            self.keys.wake(queue),
            self.keys.queues_changed,
        ]
        with self._connection():
            scripts.run(self.redis, "enqueue", keys, [queue, "", "tail", dumps(item)])

    def pop(self, queue: str) -> Any:
        """Pop the head of ``queue`` (not claimed: the caller owns it from now on)."""
        item = self.redis.lpop(self.keys.queue(queue))
        return None if item is None else _decoded(raw(cast("bytes | str", item)))

    def size(self, queue: str) -> int:
        return int(self.redis.llen(self.keys.queue(queue)))

    def queues(self) -> list[str]:
        return sorted(text(m) for m in self.redis.smembers(self.keys.queues))

    def peek(self, queue: str, start: int = 0, count: int = 1) -> list[Any]:
        """Payloads at positions ``start .. start+count-1``, decoded where possible."""
        items = self.redis.lrange(self.keys.queue(queue), start, start + count - 1)
        return [_decoded(raw(item)) for item in items]

    def remove_queue(self, queue: str) -> int:
        """Delete a queue and forget its name; returns how many jobs it held."""
        pipe = self.redis.pipeline()
        pipe.llen(self.keys.queue(queue))
        pipe.srem(self.keys.queues, queue)
        pipe.delete(self.keys.queue(queue), self.keys.wake(queue))
        return int(pipe.execute()[0])

    def dequeue(
        self, queue: str, job: JobRef | None = None, *args: Any, job_id: str | None = None
    ) -> int:
        """Remove queued jobs of a class (and, if given, exactly these args), or by id.

        ``dequeue("q", UserJob, {"name": "x"})`` matches what ``enqueue`` wrote with
        that data; ``dequeue("q", Archive, 44, "x")`` matches Ruby's positional args.
        Each match is removed with LREM of its exact bytes, so this is safe while
        workers run: a job a worker already took is simply not found.
        """
        if job is None and job_id is None:
            raise ValueError("give a job class (and optional args) or a job_id")
        name = job_name(job) if job is not None else None
        wanted = list(args)
        key = self.keys.queue(queue)
        matches: set[bytes] = set()
        # One snapshot: paging by index would miss jobs when workers pop meanwhile.
        for item in self.redis.lrange(key, 0, -1):
            try:
                payload = Payload.decode(item)
            except ValueError:
                continue
            if (
                (name is None or payload.class_name == name)
                and (not wanted or payload.args == wanted)
                and (job_id is None or payload.id == job_id)
            ):
                matches.add(raw(item))
        pipe = self.redis.pipeline(transaction=False)
        for match in matches:
            pipe.lrem(key, 0, match)  # type: ignore[arg-type]
        return sum(int(n) for n in pipe.execute())

    # --- status and stats -----------------------------------------------------

    def job_status(self, job_id: str, prefix: str = "") -> JobStatus | None:
        raw = self.redis.get(self.keys.status(job_id, prefix))
        return None if raw is None else JobStatus.decode(raw)

    def status(self, job_id: str, prefix: str = "") -> Status | None:
        """WAITING, RUNNING, FAILED or COMPLETE; None for an untracked or expired job."""
        packet = self.job_status(job_id, prefix)
        return packet.status if packet else None

    def stat(self, name: str, worker_id: str | None = None) -> int:
        return int(self.redis.get(self.keys.stat(name, worker_id)) or 0)

    def info(self) -> dict[str, Any]:
        """What Ruby's ``Resque.info`` reports."""
        queues = self.queues()
        workers = sorted(text(w) for w in self.redis.smembers(self.keys.workers))
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self.keys.queue(queue))
        pipe.get(self.keys.stat("processed"))
        pipe.llen(self.keys.failed)
        if workers:
            pipe.mget([self.keys.worker(w) for w in workers])
        replies = pipe.execute()
        sizes = replies[: len(queues)]
        working = replies[len(queues) + 2] if workers else []
        return {
            "pending": sum(int(n) for n in sizes),
            "processed": int(replies[len(queues)] or 0),
            "queues": len(queues),
            "workers": len(workers),
            "working": sum(1 for w in working if w),
            "failed": int(replies[len(queues) + 1]),
            "servers": [describe(self.redis)],
        }


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")
