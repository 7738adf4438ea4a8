"""``AsyncResque``: the producer for asyncio code (FastAPI, Starlette, aiohttp), on
``redis.asyncio``.

It writes what ``Resque`` writes, byte for byte: both take the payload, middleware chain
and script call from ``Producer`` (producer.py); only the run differs (here, aio.py's).

The enqueue middleware chain (``around_enqueue``, the ``before_enqueue`` and
``after_enqueue`` hooks, events) is synchronous and runs as it is, on the event loop,
before the write: middleware only add payload fields or refuse a job, and must not block
(one that needs I/O belongs in the job, or in a thread of its own). Importing this
module loads neither the worker nor the synchronous client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any

import redis
import redis.asyncio

from pyresque.client import apart
from pyresque.client.admin.workflows import BatchInfo, state_of
from pyresque.client.calls import Enqueued
from pyresque.client.handle import AsyncJobHandle, no_slot, wait_result_async
from pyresque.client.producer import Call, Planned, Producer
from pyresque.client.workflows import Node, Workflow, WorkflowWriter, flow_statuses, workflow_of
from pyresque.exceptions import NotReplicated
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job, JobFunction, JobRef, Registry
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique
from pyresque.protocol import aio, push, workflow_aio
from pyresque.protocol.cluster import is_cluster
from pyresque.protocol.connection import REDIS_DOWN, unavailable
from pyresque.protocol.durability import Replicas
from pyresque.protocol.durability import from_env as durability_from_env
from pyresque.protocol.keys import DEFAULT_NAMESPACE, Keys
from pyresque.protocol.payload import Dialect, Payload
from pyresque.protocol.progress import Progress
from pyresque.protocol.results import ttl_for
from pyresque.protocol.slots import job_slot
from pyresque.protocol.status import JobStatus, Status

__all__ = ["AsyncResque", "Enqueued"]


class AsyncResque(Producer):
    """``Resque``'s producer API, awaited: ``enqueue``, ``enqueue_to``, ``enqueue_job``,
    ``enqueue_many``, ``enqueue_at``/``enqueue_in`` (and their ``_to`` forms),
    ``schedule``, ``job_status``, ``status``, ``result``, ``progress`` and ``cancel``.
    Arguments and returns are ``Resque``'s. ``redis`` is a URL (any form ``Resque`` takes), a
    ``redis.asyncio.Redis`` client, or None for ``REDIS_URL``; ``durability`` as
    ``Resque``'s (protocol/durability.py). Close it with
    ``await aclose()`` or use it as ``async with AsyncResque(...) as resque``.
    """

    def __init__(
        self,
        redis: str | redis.asyncio.Redis | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        dialect: Dialect | str = Dialect.PHP,
        registry: Registry | None = None,
        events: Events | None = None,
        strict: bool = False,
        durability: Replicas | None = None,
    ) -> None:
        client = aio.connect(redis)
        clustered = is_cluster(client)
        super().__init__(
            namespace,
            dialect=dialect,
            registry=registry,
            events=events,
            strict=strict,
            cluster=clustered,
        )
        self.redis = client
        self.durability = durability or durability_from_env()
        self._twin: Any = None  # a synchronous Resque for the admin calls (``cancel``)
        self._url = redis if isinstance(redis, str) else None  # the twin's, on Cluster

    def __repr__(self) -> str:
        return f"AsyncResque({self.redis!r}, namespace={self.namespace!r})"

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.redis.aclose()

    async def __aenter__(self) -> AsyncResque:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- enqueueing -------------------------------------------------------------------

    async def enqueue(
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
        store_result: bool = False,
        result_ttl: int | None = None,
        depends_on: Sequence[str] = (),
        on_dependency_failure: str = "cancel",
        dependable: bool = False,
    ) -> AsyncJobHandle | None:
        """``Resque.enqueue``: php-resque style, the job gets ``args`` as ``self.args``."""
        item = Enqueued(queue, job, [args], track_status, prefix, at_front, timeout, unique, retry)
        item.result_ttl = ttl_for(store_result, result_ttl)
        item.depends_on, item.dependable = depends_on, dependable
        item.on_dependency_failure = on_dependency_failure
        return await self._write(self._plan(item))

    async def enqueue_to(
        self,
        queue: str,
        job: JobRef,
        *args: Any,
        track_status: bool = False,
        at_front: bool = False,
        timeout: float | None = None,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
        store_result: bool = False,
        result_ttl: int | None = None,
        depends_on: Sequence[str] = (),
        on_dependency_failure: str = "cancel",
        dependable: bool = False,
    ) -> AsyncJobHandle | None:
        """``Resque.enqueue_to``: Ruby style, ``args`` are positional."""
        item = Enqueued(queue, job, list(args), track_status, "", at_front, timeout, unique, retry)
        item.result_ttl = ttl_for(store_result, result_ttl)
        item.depends_on, item.dependable = depends_on, dependable
        item.on_dependency_failure = on_dependency_failure
        return await self._write(self._plan(item))

    async def enqueue_workflow(self, node: Node) -> Workflow[AsyncJobHandle]:
        """``Resque.enqueue_workflow``: a chain, group or job, in one atomic call."""
        writer, call = self._workflow(node)
        ids = await self._run_workflow(writer, call)
        return workflow_of(writer, ids, lambda job_id: AsyncJobHandle(job_id, self))

    async def _run_workflow(self, writer: WorkflowWriter, call: Call) -> list[str]:
        """Make a workflow's one call; its jobs' ids, once their hooks ran."""
        await self._register(item.queue for item, _ in writer.written)
        reply, durable = await self._run(call)
        if self.keys.clustered:
            await self._sharded(writer.written, reply)
        if not durable and self.durability is not None:
            raise self.durability.not_replicated("a workflow")
        return self._workflow_written(writer, reply)

    async def enqueue_job(
        self, job: type[Job] | JobFunction[..., Any], *args: Any
    ) -> AsyncJobHandle | None:
        """Enqueue positional ``args`` on the job class's own ``queue``."""
        return await self.enqueue_to(self._default_queue(job), job, *args)

    async def enqueue_many(self, jobs: Iterable[Enqueued]) -> list[AsyncJobHandle | None]:
        """``Resque.enqueue_many``: one round trip (a pipeline of script calls); returns
        ``AsyncJobHandle``s."""
        batch = self._batch(jobs)
        if batch.flow is not None:  # first: an unknown dependency raises, nothing written
            await self._run_workflow(*batch.flow)
        policy = self.durability
        wait = (policy.count, policy.timeout_ms) if policy is not None else None
        await self._register(batch.queues)
        try:  # on Cluster the unique jobs' locks first (apart.py)
            run = partial(aio.run_many, self.redis, wait=wait)
            replies = await apart.write_many_async(self.redis, self.keys, batch.calls, run)
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
        ids = self._batch_written(batch, replies, policy)
        return AsyncJobHandle.many(ids, self, batch.where)

    async def schedule(self, when: datetime | float, item: Enqueued) -> AsyncJobHandle | None:
        """``Resque.schedule``: ``item`` at ``when``, in the delayed queue until then."""
        planned = self._plan_at(when, item, time.time())
        scheduled = planned is not None and planned.call.script == "schedule"
        try:
            handle = await self._write(planned)
        except NotReplicated:  # written all the same: indexed, not left to the sweep
            if planned is not None and scheduled:
                await self._index(item.queue, planned.call.args[0], planned.payload.id)
            raise
        if handle and planned and scheduled:
            await self._index(item.queue, planned.call.args[0], str(handle))
        return handle

    async def _index(self, queue: str, due: int, job_id: str | None) -> None:
        """Index a job just scheduled, as Resque does (Cluster only; a failure is logged)."""
        await workflow_aio.indexed(self.redis, self.keys, queue, due, job_id)

    async def enqueue_at(
        self,
        when: datetime | float,
        queue: str,
        job: JobRef,
        args: Any = None,
        track_status: bool = False,
        *,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncJobHandle | None:
        """``enqueue`` at a later time (php-resque's ``enqueueAt``)."""
        item = Enqueued(queue, job, [args], track_status, unique=unique, retry=retry)
        return await self.schedule(when, item)

    async def enqueue_in(
        self,
        delay: float | timedelta,
        queue: str,
        job: JobRef,
        args: Any = None,
        track_status: bool = False,
        *,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncJobHandle | None:
        """``enqueue`` after ``delay`` (seconds or a timedelta)."""
        item = Enqueued(queue, job, [args], track_status, unique=unique, retry=retry)
        return await self.schedule(self._after(delay, time.time()), item)

    async def enqueue_at_to(
        self,
        when: datetime | float,
        queue: str,
        job: JobRef,
        *args: Any,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncJobHandle | None:
        """``enqueue_to`` at a later time (positional args)."""
        item = Enqueued(queue, job, list(args), unique=unique, retry=retry)
        return await self.schedule(when, item)

    async def enqueue_in_to(
        self,
        delay: float | timedelta,
        queue: str,
        job: JobRef,
        *args: Any,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncJobHandle | None:
        """``enqueue_to`` after ``delay``."""
        item = Enqueued(queue, job, list(args), unique=unique, retry=retry)
        return await self.schedule(self._after(delay, time.time()), item)

    async def _write(self, planned: Planned | None) -> AsyncJobHandle | None:
        """Run a planned job's call, then its ``after_enqueue`` hooks; its id, or None."""
        if planned is None:
            return None
        await self._register([planned.item.queue])
        call, run = planned.call, self._run
        if call.lock is not None:  # on Cluster, a unique job's lock first (apart.py)
            run = partial(apart.write_async, self.redis, self.keys, call.lock, self._run)
        reply, durable = await run(call)
        if call.script == "wf_enqueue" and self.keys.clustered:
            await self._sharded([(planned.item, planned.payload)], reply)
        job_id = self._written(planned, reply, durable, self.durability)
        return AsyncJobHandle(job_id, self, planned.item.queue) if job_id is not None else None

    async def _register(self, queues: Iterable[str]) -> None:
        """``Resque._register``: new queues named in the home slot first (Cluster only)."""
        if new := self._unregistered(queues):
            home = self.keys.home
            try:
                added = await self.redis.sadd(home.queues, *new)
                if added and not await self.redis.llen(home.queues_changed):
                    await self.redis.rpush(home.queues_changed, "1")
            except REDIS_DOWN as exc:
                raise unavailable(self.redis, exc) from exc

    async def _sharded(self, written: list[tuple[Enqueued, Payload]], reply: Any) -> None:
        """On Cluster, after a workflow's call (``Resque._run_workflow``): its statuses and
        pushes, in its queues' slots (``LookupError``, nothing written: a dependency unknown)."""
        statuses = flow_statuses(self.keys, written, reply)
        try:
            await workflow_aio.enqueued_sharded(self.redis, self.keys, statuses, reply)
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc

    async def _run(self, call: Call) -> tuple[Any, bool]:
        """Run a script call: its reply, and whether it is as durable as the policy asks."""

        async def run(args: list[Any]) -> tuple[Any, bool]:
            if (policy := self.durability) is None:
                return await aio.run(self.redis, call.script, call.keys, args), True
            wait = (policy.count, policy.timeout_ms)
            reply, acked = await aio.run_and_wait(self.redis, call.script, call.keys, args, wait)
            return reply, acked >= policy.count

        try:
            if self._plain(call):  # Resque's own pipeline, no script (protocol/push.py)
                return await push.push_async(self.redis, call.keys, call.args), True
            if call.script == "wf_enqueue" and self.keys.clustered:  # workflow_results.py
                return await workflow_aio.run_with_results(self.redis, self.keys, call.args, run)
            return await run(call.args)
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc

    # --- status -------------------------------------------------------------------------

    async def job_status(self, job_id: str, prefix: str = "", queue: str = "") -> JobStatus | None:
        """The job's status packet (its ``result`` too); None if there is none or it
        cannot be read."""
        keys = await self._job_keys(job_id, prefix, queue)
        try:
            packet = None if keys is None else await self.redis.get(keys.status(job_id, prefix))
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
        except redis.ResponseError:  # a key of another type: anyone may write it
            return None
        return None if packet is None else JobStatus.decode(packet)

    async def _job_keys(self, job_id: str, prefix: str, queue: str) -> Keys | None:
        """``Resque._job_keys``: on Cluster without the queue, looked for by the twin."""
        if queue or not self.keys.clustered:
            return self.keys.for_queue(queue) if queue else self.keys
        twin = self._sync()
        return await asyncio.to_thread(job_slot, twin.redis, self.keys, job_id, prefix)

    async def status(self, job_id: str, prefix: str = "", queue: str = "") -> Status | None:
        """WAITING, RUNNING, FAILED, COMPLETE or CANCELLED; None for an untracked or expired job."""
        packet = await self.job_status(job_id, prefix, queue)
        return packet.status if packet else None

    async def _read(self, call: Awaitable[Any]) -> Any:
        """A read's reply; None for a key of another type (foreign data)."""
        try:
            return await call
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
        except redis.ResponseError:
            return None

    async def progress(self, job_id: str) -> Progress | None:
        """``Resque.progress``, awaited."""
        raw = await self._read(self.redis.get(self.keys.progress(job_id)))
        return None if raw is None else Progress.decode(raw)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """``Resque.cancel``: a queued, delayed or running job. Run in a thread on a
        synchronous client to the same server (made on first use): a cancel scans
        queues and workers, an operator's action, not one per job."""
        return await asyncio.to_thread(self._sync().cancel, job_id)

    def _sync(self) -> Any:
        """The synchronous ``Resque`` twin (made on first use)."""
        if self._twin is None:
            from pyresque.client.resque import Resque  # not at import: see the module doc

            if self.keys.clustered:  # a cluster client cannot be copied: its URL is used
                if self._url is None:
                    raise ValueError(
                        "this call on Redis Cluster needs AsyncResque made from a URL, or Resque"
                    )
                self._twin = Resque(self._url, self.namespace)
            else:
                self._twin = Resque(aio.sync_twin(self.redis), self.namespace)
        return self._twin

    async def batch(self, batch_id: str) -> BatchInfo | None:
        """``Resque.batch``: a group's live counts, or None."""
        return BatchInfo.decode(
            batch_id, await self._read(self.redis.hget(self.keys.wf_batches, batch_id))
        )

    async def workflow_state(self, job_id: str) -> str | None:
        """``Resque.workflow_state``: waiting, queued, ok, failed, cancelled, or None."""
        return state_of(await self._read(self.redis.hget(self.keys.wf_jobs, job_id)))

    async def result(self, job_id: str, timeout: float | None = None, queue: str = "") -> Any:
        """``Resque.result``, awaited (``AsyncJobHandle.wait``)."""
        try:
            keys = await self._job_keys(job_id, "", queue)
            return await wait_result_async(self.redis, keys or no_slot(job_id), job_id, timeout)
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
