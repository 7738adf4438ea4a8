"""The producer API: ``Resque``, with the names Ruby and PHP users know.

``enqueue`` follows php-resque (``args`` is one piece of data, wrapped as
``[args]``); ``enqueue_to`` follows Ruby (``*args`` are positional). Both write
with one atomic Lua call (enqueue.lua): queue list, queue set, status and the
wake-up token for idle workers, all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast

import redis

from pyresque.client.admin.methods import AdminMethods
from pyresque.client.calls import Enqueued, ScriptCalls
from pyresque.client.checks import check_args, check_job, check_queue, check_timeout, wire
from pyresque.jobs.events import Events
from pyresque.jobs.events import events as default_events
from pyresque.jobs.job import Job, JobFunction, JobRef, Registry, job_name
from pyresque.jobs.job import registry as default_registry
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique
from pyresque.middleware import unique
from pyresque.middleware.chain import Chain, Enqueuing, Middleware
from pyresque.middleware.hooks import ResqueHooks
from pyresque.protocol import scripts
from pyresque.protocol.connection import REDIS_DOWN, connect, reaching, unavailable
from pyresque.protocol.counters import counter
from pyresque.protocol.delayed import Delayed, due_second, item_json
from pyresque.protocol.failure import Failures
from pyresque.protocol.keys import DEFAULT_NAMESPACE, Keys
from pyresque.protocol.payload import Dialect, Payload, dumps
from pyresque.protocol.status import JobStatus, Status, waiting_packet

__all__ = ["Enqueued", "Resque"]

#: Payloads per enqueue.lua call in ``enqueue_many`` (Lua's unpack has a limit).
_CHUNK = 1000


class Resque(AdminMethods):
    """A connection to one Resque namespace.

    ``redis`` is a URL, a ``redis.Redis`` client, or None for ``REDIS_URL`` /
    ``REDIS_BACKEND`` / localhost. ``dialect`` chooses the payload shape written:
    php-resque's (with an id, so status tracking works; the default) or Ruby's.
    With ``strict=True`` only registered job names can be enqueued. The admin methods
    (``queues``, ``size``, ``dequeue``, ``info``, ``delayed_jobs`` ...) come from the
    admin layer (``client.admin.methods``).
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
        self._calls = ScriptCalls(self.keys)
        #: Where middleware are added (``middleware.add(obj)``; chain.py says where each runs).
        self.middleware = Middleware(self.events)
        self._chain: Chain[Enqueuing, Payload | None] = Chain(
            self.events,
            "around_enqueue",
            inner=[ResqueHooks(self.events).around_enqueue, unique.around_enqueue],
        )

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
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """Enqueue as php-resque does: the job gets ``args`` as ``self.args``.

        Returns the job id, or None when a ``before_enqueue`` hook vetoed it or an
        equal unique job is already enqueued.
        """
        return self._enqueue(
            Enqueued(queue, job, [args], track_status, prefix, at_front, timeout, unique, retry)
        )

    def enqueue_to(
        self,
        queue: str,
        job: JobRef,
        *args: Any,
        track_status: bool = False,
        at_front: bool = False,
        timeout: float | None = None,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """Enqueue as Ruby's ``Resque.enqueue_to`` does: ``args`` are positional."""
        return self._enqueue(
            Enqueued(queue, job, list(args), track_status, "", at_front, timeout, unique, retry)
        )

    def enqueue_job(self, job: type[Job] | JobFunction, *args: Any) -> str | None:
        """Enqueue positional ``args`` on the job class's own ``queue``."""
        job_class = job.job_class if isinstance(job, JobFunction) else job
        if not job_class.queue:
            raise ValueError(f"{job_class.resque_name} has no default queue; use enqueue_to")
        return self.enqueue_to(job_class.queue, job, *args)

    def _enqueue(self, item: Enqueued) -> str | None:
        job = self._prepare(item)
        if job is None:
            return None
        payload, lock = job.payload, job.lock
        try:  # reaching() without its context manager: this runs once per enqueue
            if lock is not None:
                call = self._calls.unique(item, payload, lock)
                if not scripts.run(self.redis, "enqueue_unique", *call):
                    return None
            else:
                scripts.run(self.redis, "enqueue", *self._calls.enqueue(item, [payload]))
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
        self._after_enqueue(item, payload)
        return payload.id

    def enqueue_many(self, jobs: Iterable[Enqueued]) -> list[str | None]:
        """Enqueue many jobs in one round trip (chunks of 1,000 per Lua call, pipelined);
        returns their ids in order (None where a hook vetoed one, or an equal unique
        job was already enqueued). Unique jobs take one Lua call each. Every job is
        checked before any is written: one invalid job raises and writes nothing."""
        jobs = list(jobs)
        for item in jobs:
            self._check(item)
        pipe = self.redis.pipeline(transaction=False)
        ids: list[str | None] = []
        done: list[tuple[Enqueued, Payload]] = []
        batch: list[Payload] = []
        first: Enqueued | None = None
        # (reply index in the pipeline, index in ids, item, payload) of each unique job
        unique: list[tuple[int, int, Enqueued, Payload]] = []
        calls = 0

        def flush() -> None:
            nonlocal calls
            if batch and first:
                scripts.run(pipe, "enqueue", *self._calls.enqueue(first, batch))
                calls += 1
            batch.clear()

        for item in jobs:
            job = self._prepare(item)
            ids.append(job.payload.id if job else None)
            if job is None:
                continue
            payload, lock = job.payload, job.lock
            if lock is not None:
                flush()  # keeps the order of jobs on the queue
                first = None
                scripts.run(pipe, "enqueue_unique", *self._calls.unique(item, payload, lock))
                unique.append((calls, len(ids) - 1, item, payload))
                calls += 1
                continue
            if first is None or first.batch_key != item.batch_key or len(batch) >= _CHUNK:
                flush()
                first = item
            batch.append(payload)
            done.append((item, payload))
        flush()
        with reaching(self.redis):
            replies = pipe.execute()
        for reply, index, item, payload in unique:
            if replies[reply]:
                done.append((item, payload))
            else:
                ids[index] = None
        for item, payload in done:
            self._after_enqueue(item, payload)
        return ids

    @staticmethod
    def _check(item: Enqueued) -> None:
        """Raise TypeError/ValueError, saying what to change, for a job no worker could take."""
        check_queue(item.queue)
        check_job(item.job)
        item.args = check_args(item.args)
        check_timeout(item.timeout)

    def _prepare(self, item: Enqueued, when: str = "now") -> Enqueuing | None:
        """The job to write for ``item``, after the enqueue chain (None: refused)."""
        self._check(item)
        name = job_name(item.job)
        if self.strict and name not in self.registry:
            raise LookupError(f"no job class is registered under {name!r} (strict mode)")
        dialect = Dialect.PHP if item.track_status or item.prefix else self.dialect
        payload = Payload.build(name, item.args, dialect, prefix=item.prefix)
        if item.timeout is not None:
            payload.extra["timeout"] = item.timeout
        if item.retry is not None:
            payload.extra["retry"] = item.retry.to_dict()
        # Not encoded here: the script call encodes each payload once, and raises
        # TypeError/ValueError (payload.dumps, producer.wire) before anything is written.
        job = Enqueuing(item.queue, payload, self._job_class(item.job), item.unique, when)
        return job if self._chain(job, lambda: job.payload) is not None else None

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

    # --- raw queue access -----------------------------------------------------

    def push(self, queue: str, item: dict[str, Any]) -> None:
        """Push a raw payload, as ``Resque.push`` does (no hooks, no id added)."""
        check_queue(queue)
        if not isinstance(item, dict):
            raise TypeError(
                f"item must be a dict payload {{class, args}}, got {type(item).__name__}"
            )
        check_job(item.get("class"))
        check_args(item.get("args", []))
        encoded = wire(dumps(item))
        with reaching(self.redis):
            scripts.run(
                self.redis, "enqueue", self._calls.push_keys(queue), [queue, "", "tail", encoded]
            )

    # --- status and stats -----------------------------------------------------

    def job_status(self, job_id: str, prefix: str = "") -> JobStatus | None:
        """The job's status packet; None if there is none or it cannot be read."""
        packet = self.redis.get(self.keys.status(job_id, prefix))
        return None if packet is None else JobStatus.decode(packet)

    def status(self, job_id: str, prefix: str = "") -> Status | None:
        """WAITING, RUNNING, FAILED or COMPLETE; None for an untracked or expired job."""
        packet = self.job_status(job_id, prefix)
        return packet.status if packet else None

    def stat(self, name: str, worker_id: str | None = None) -> int:
        """A counter, read as Ruby's ``to_i`` reads it (0 for a value that is not a number)."""
        return counter(cast("bytes | None", self.redis.get(self.keys.stat(name, worker_id))))

    # --- delayed jobs (resque-scheduler's layout, delayed.py) -------------------

    @cached_property
    def delayed(self) -> Delayed:
        """The delayed queue: what ``enqueue_at`` fills and the scheduler empties."""
        return Delayed(self.redis, self.keys)

    def schedule(self, when: datetime | float, item: Enqueued) -> str | None:
        """Enqueue ``item`` at ``when`` (a datetime or epoch seconds), in the delayed
        queue until then. A time not in the future enqueues at once, as Ruby does.

        Enqueue hooks run now. Returns the job id (None when vetoed, or when an equal
        unique job is already scheduled or enqueued).
        """
        timestamp = due_second(when)
        if timestamp <= int(self.delayed.clock()):
            return self._enqueue(item)
        job = self._prepare(item, "later")
        if job is None:
            return None
        payload, lock = job.payload, job.lock
        status = None
        if item.track_status and payload.id:
            status = (self.keys.status(payload.id, payload.prefix), waiting_packet())
        entry = item_json(payload, item.queue, item.at_front)
        wire(entry)
        with reaching(self.redis):
            if not self.delayed.schedule(timestamp, entry, lock, status):
                return None
        self._after_enqueue(item, payload)
        return payload.id

    def enqueue_at(
        self,
        when: datetime | float,
        queue: str,
        job: JobRef,
        args: Any = None,
        track_status: bool = False,
        *,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """``enqueue`` at a later time (php-resque's ``enqueueAt``)."""
        item = Enqueued(queue, job, [args], track_status, unique=unique, retry=retry)
        return self.schedule(when, item)

    def enqueue_in(
        self,
        delay: float | timedelta,
        queue: str,
        job: JobRef,
        args: Any = None,
        track_status: bool = False,
        *,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """``enqueue`` after ``delay`` (seconds or a timedelta)."""
        return self.enqueue_at(
            self._after(delay), queue, job, args, track_status, unique=unique, retry=retry
        )

    def enqueue_at_to(
        self,
        when: datetime | float,
        queue: str,
        job: JobRef,
        *args: Any,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """``enqueue_to`` at a later time: Ruby's ``enqueue_at_with_queue`` (positional args)."""
        return self.schedule(when, Enqueued(queue, job, list(args), unique=unique, retry=retry))

    def enqueue_in_to(
        self,
        delay: float | timedelta,
        queue: str,
        job: JobRef,
        *args: Any,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> str | None:
        """``enqueue_to`` after ``delay``: Ruby's ``enqueue_in_with_queue``."""
        return self.enqueue_at_to(self._after(delay), queue, job, *args, unique=unique, retry=retry)

    def _after(self, delay: float | timedelta) -> float:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        return self.delayed.clock() + seconds

    def payload_for(self, item: Enqueued) -> Payload | None:
        """The payload ``enqueue`` would write for ``item``, after the ``before_enqueue``
        hooks (None when one vetoes it): for producers that push it themselves (cron)."""
        job = self._prepare(item, "push")
        return job.payload if job else None

    def announce(self, item: Enqueued, payload: Payload) -> None:
        """Run the ``after_enqueue`` hooks of a job a producer pushed itself."""
        self._after_enqueue(item, payload)
