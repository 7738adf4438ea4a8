"""The producer API: ``Resque``, with the names Ruby and PHP users know.

``enqueue`` follows php-resque (``args`` is one piece of data, wrapped as
``[args]``); ``enqueue_to`` follows Ruby (``*args`` are positional). Both write
with one atomic Lua call (enqueue.lua): queue list, queue set, status and the
wake-up token for idle workers, all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any, cast

import redis

from pyresque.client import apart
from pyresque.client.admin.methods import AdminMethods
from pyresque.client.calls import Enqueued
from pyresque.client.checks import check_args, check_job, check_queue, wire
from pyresque.client.handle import JobHandle, no_slot, wait_result
from pyresque.client.producer import Call, Planned, Producer
from pyresque.client.workflows import Node, Workflow, WorkflowWriter, flow_statuses, workflow_of
from pyresque.exceptions import NotReplicated
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job, JobFunction, JobRef, Registry
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique
from pyresque.protocol import packed, push
from pyresque.protocol.cluster import is_cluster
from pyresque.protocol.connection import REDIS_DOWN, connect, reaching, unavailable
from pyresque.protocol.counters import counter
from pyresque.protocol.delayed import Delayed
from pyresque.protocol.delayed_shards import ShardedDelayed, indexed
from pyresque.protocol.durability import Replicas, run_durably
from pyresque.protocol.durability import from_env as durability_from_env
from pyresque.protocol.durability import run_many as run_many_durably
from pyresque.protocol.failure import Failures
from pyresque.protocol.keys import DEFAULT_NAMESPACE, Keys
from pyresque.protocol.payload import Dialect, dumps
from pyresque.protocol.progress import Progress
from pyresque.protocol.results import ttl_for
from pyresque.protocol.slots import job_slot, name_queues
from pyresque.protocol.status import JobStatus, Status
from pyresque.protocol.workflow import enqueued_sharded
from pyresque.protocol.workflow_results import run_with_results

__all__ = ["Enqueued", "Resque"]


class Resque(Producer, AdminMethods):
    """A connection to one Resque namespace.

    ``redis`` is a URL, a ``redis.Redis`` client, or None for ``REDIS_URL`` /
    ``REDIS_BACKEND`` / localhost. ``dialect`` chooses the payload shape written:
    php-resque's (with an id, so status tracking works; the default) or Ruby's.
    With ``strict=True`` only registered job names can be enqueued. ``durability``
    (default: ``PYRESQUE_WAIT_REPLICAS``, else none) makes each enqueue wait until
    replicas have the job, or raise ``NotReplicated`` (protocol/durability.py). The admin methods
    (``queues``, ``size``, ``dequeue``, ``info``, ``delayed_jobs`` ...) come from the
    admin layer (``client.admin.methods``); what is decided before a write, from
    ``Producer`` (producer.py), which ``AsyncResque`` shares.
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
        durability: Replicas | None = None,
    ) -> None:
        client = connect(redis)
        super().__init__(
            namespace,
            dialect=dialect,
            registry=registry,
            events=events,
            strict=strict,
            cluster=is_cluster(client),
        )
        self.redis = client
        self._held = packed.Held(client)  # plain pushes skip the pool's checkout
        self.durability = durability or durability_from_env()
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
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
        store_result: bool = False,
        result_ttl: int | None = None,
        depends_on: Sequence[str] = (),
        on_dependency_failure: str = "cancel",
        dependable: bool = False,
    ) -> JobHandle | None:
        """Enqueue as php-resque does: the job gets ``args`` as ``self.args``.

        Returns the job's id as a ``JobHandle`` (a ``str``), or None when a
        ``before_enqueue`` hook vetoed it or an equal unique job is already enqueued.
        ``store_result`` / ``result_ttl`` (seconds, default one day) store the job's
        result for ``JobHandle.result``, as the job class's attributes of the same names do.
        ``depends_on`` (ids or handles of jobs enqueued with ``dependable=True``, or
        in a workflow) makes it wait in Redis until they all succeeded;
        ``on_dependency_failure`` says what one that fails for good does to it:
        ``"cancel"`` it (and its own dependents that cancel), or ``"run"`` it anyway.
        """
        item = Enqueued(queue, job, [args], track_status, prefix, at_front, timeout, unique, retry)
        item.result_ttl = ttl_for(store_result, result_ttl)
        item.depends_on, item.dependable = depends_on, dependable
        item.on_dependency_failure = on_dependency_failure
        return self._enqueue(item)

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
        store_result: bool = False,
        result_ttl: int | None = None,
        depends_on: Sequence[str] = (),
        on_dependency_failure: str = "cancel",
        dependable: bool = False,
    ) -> JobHandle | None:
        """Enqueue as Ruby's ``Resque.enqueue_to`` does: ``args`` are positional.
        The other options are ``enqueue``'s."""
        item = Enqueued(queue, job, list(args), track_status, "", at_front, timeout, unique, retry)
        item.result_ttl = ttl_for(store_result, result_ttl)
        item.depends_on, item.dependable = depends_on, dependable
        item.on_dependency_failure = on_dependency_failure
        return self._enqueue(item)

    def enqueue_job(self, job: type[Job] | JobFunction[..., Any], *args: Any) -> JobHandle | None:
        """Enqueue positional ``args`` on the job class's own ``queue``."""
        return self.enqueue_to(self._default_queue(job), job, *args)

    def _enqueue(self, item: Enqueued) -> JobHandle | None:
        return self._write(self._plan(item))

    def _write(self, planned: Planned | None) -> JobHandle | None:
        """Run a planned job's call, then its ``after_enqueue`` hooks; its id, or None."""
        if planned is None:
            return None
        call = planned.call
        try:  # reaching() without its context manager: this runs once per enqueue
            self._register([planned.item.queue])
            if self._plain(call):  # Resque's own pipeline, no script (protocol/push.py)
                reply, durable = push.push(self._held, call.keys, call.args), True
            elif call.script == "wf_enqueue":
                reply, durable = self._run_flow(call)
            else:  # on Cluster, a unique job's lock first (apart.py)
                run = (
                    run_durably if call.lock is None else partial(apart.write, self.keys, call.lock)
                )
                reply, durable = run(self.redis, call.script, call.keys, call.args, self.durability)
        except REDIS_DOWN as exc:
            raise unavailable(self.redis, exc) from exc
        if call.script == "wf_enqueue" and self.keys.clustered:
            statuses = flow_statuses(self.keys, [(planned.item, planned.payload)], reply)
            enqueued_sharded(self.redis, self.keys, statuses, reply)
        job_id = self._written(planned, reply, durable, self.durability)
        return JobHandle(job_id, self, planned.item.queue) if job_id is not None else None

    def _register(self, queues: Iterable[str]) -> None:
        """Name new queues in the home slot's ``queues`` set first (Cluster only)."""
        if new := self._unregistered(queues):
            name_queues(self.redis, self.keys, list(new))

    def enqueue_many(self, jobs: Iterable[Enqueued]) -> list[JobHandle | None]:
        """Enqueue many jobs in one round trip (chunks of 1,000 per Lua call, pipelined);
        returns their ``JobHandle``s in order (None where a hook vetoed one, or an equal
        unique job was already enqueued). Unique jobs take one Lua call each. Every job is
        checked before any is written: one invalid job raises and writes nothing. Jobs with
        ``depends_on`` or ``dependable`` are written first, all in one atomic call (one
        more round trip); ``LookupError`` for an unknown dependency, and nothing written."""
        batch = self._batch(jobs)
        if batch.flow is not None:  # first: an unknown dependency raises, nothing written
            self._run_workflow(*batch.flow)
        with reaching(self.redis):
            self._register(batch.queues)
            run = partial(run_many_durably, self.redis, policy=self.durability)
            replies = apart.write_many(self.redis, self.keys, batch.calls, run)
        ids = self._batch_written(batch, replies, self.durability)
        return JobHandle.many(ids, self, batch.where)

    def enqueue_workflow(self, node: Node) -> Workflow[JobHandle]:
        """Enqueue a workflow (``chain``, ``group``, or one ``Enqueued``) in one atomic
        call: the jobs that can start go onto their queues, the others wait in Redis.
        Raises ``LookupError`` (nothing written) for an unknown ``depends_on`` id."""
        writer, call = self._workflow(node)
        ids = self._run_workflow(writer, call)
        return workflow_of(writer, ids, lambda job_id: JobHandle(job_id, self))

    def _run_workflow(self, writer: WorkflowWriter, call: Call) -> list[str]:
        """Make a workflow's one call; its jobs' ids, once their hooks ran."""
        with reaching(self.redis):
            self._register(item.queue for item, _ in writer.written)
            reply, durable = self._run_flow(call)
            if self.keys.clustered:  # the statuses and the pushes, in the queues' slots
                statuses = flow_statuses(self.keys, writer.written, reply)
                enqueued_sharded(self.redis, self.keys, statuses, reply)
        if not durable and self.durability is not None:
            raise self.durability.not_replicated("a workflow")
        return self._workflow_written(writer, reply)

    def _run_flow(self, call: Call) -> tuple[Any, bool]:
        """A wf_enqueue.lua call; on Cluster, made again with the stored results it asks
        for (protocol/workflow_results.py)."""

        def run(args: list[Any]) -> tuple[Any, bool]:
            return run_durably(self.redis, call.script, call.keys, args, self.durability)

        if not self.keys.clustered:
            return run(call.args)
        return run_with_results(self.redis, self.keys, call.args, run)

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
        keys, args = self._calls.push_keys(queue), [queue, "", "tail", encoded]
        with reaching(self.redis):
            self._register([queue])
            _, durable = run_durably(self.redis, "enqueue", keys, args, self.durability)
        if not durable and self.durability is not None:
            raise self.durability.not_replicated(f"the {item.get('class')} job pushed")

    # --- status and stats -----------------------------------------------------

    def job_status(self, job_id: str, prefix: str = "", queue: str = "") -> JobStatus | None:
        """The job's status packet; None if there is none or it cannot be read. On Redis
        Cluster it is in the slot of the job's ``queue``; without it, every queue's slot
        is looked in (slots.job_slot)."""
        keys = self._job_keys(job_id, prefix, queue)
        try:
            packet = None if keys is None else self.redis.get(keys.status(job_id, prefix))
        except redis.ResponseError:  # a key of another type: anyone may write it
            return None
        return None if packet is None else JobStatus.decode(packet)

    def status(self, job_id: str, prefix: str = "", queue: str = "") -> Status | None:
        """WAITING, RUNNING, FAILED, COMPLETE or CANCELLED; None for an untracked or expired job."""
        packet = self.job_status(job_id, prefix, queue)
        return packet.status if packet else None

    def _job_keys(self, job_id: str, prefix: str, queue: str) -> Keys | None:
        """The keys of the slot with the job's status and result (see ``job_status``)."""
        return (
            self.keys.for_queue(queue) if queue else job_slot(self.redis, self.keys, job_id, prefix)
        )

    def progress(self, job_id: str) -> Progress | None:
        """The last progress the job reported (``Job.progress``); None if none was (or
        what the key holds is not a progress record)."""
        try:
            raw = self.redis.get(self.keys.progress(job_id))
        except redis.ResponseError:  # a key of another type: anyone may write it
            return None
        return None if raw is None else Progress.decode(raw)

    def result(self, job_id: str, timeout: float | None = None, queue: str = "") -> Any:
        """The result of a job that stores one (``JobHandle.result``: it waits up to
        ``timeout`` seconds, None for no limit, 0 for not at all). On Redis Cluster the
        wait is in the slot of the job's ``queue`` (the handle knows it); without it,
        in the slot that has the job's status or result (``job_status``)."""
        with reaching(self.redis):
            keys = self._job_keys(job_id, "", queue)
            return wait_result(self.redis, keys or no_slot(job_id), job_id, timeout)

    def stat(self, name: str, worker_id: str | None = None) -> int:
        """A counter, read as Ruby's ``to_i`` reads it (0 for a value that is not a number)."""
        return counter(cast("bytes | None", self.redis.get(self.keys.stat(name, worker_id))))

    # --- delayed jobs (resque-scheduler's layout, delayed.py) -------------------

    @cached_property
    def delayed(self) -> Delayed:
        """The delayed queue: what ``enqueue_at`` fills and the scheduler empties (on
        Cluster, a schedule in each queue's slot: delayed_shards.py)."""
        if self.keys.clustered:
            return ShardedDelayed(self.redis, self.keys)
        return Delayed(self.redis, self.keys)

    def schedule(self, when: datetime | float, item: Enqueued) -> JobHandle | None:
        """Enqueue ``item`` at ``when`` (a datetime or epoch seconds), in the delayed
        queue until then. A time not in the future enqueues at once, as Ruby does.

        Enqueue hooks run now. Returns the job id (None when vetoed, or when an equal
        unique job is already scheduled or enqueued).
        """
        planned = self._plan_at(when, item, self.delayed.clock())
        scheduled = planned is not None and planned.call.script == "schedule"
        try:
            handle = self._write(planned)
        except NotReplicated:  # written all the same: indexed, not left to the sweep
            if planned is not None and scheduled:
                due, job_id = planned.call.args[0], planned.payload.id or ""
                indexed(self.redis, self.keys, item.queue, due, job_id)
            raise
        if handle is not None and planned is not None and scheduled:
            indexed(self.redis, self.keys, item.queue, planned.call.args[0], handle)
        return handle

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
    ) -> JobHandle | None:
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
    ) -> JobHandle | None:
        """``enqueue`` after ``delay`` (seconds or a timedelta)."""
        return self.enqueue_at(
            self._after(delay, self.delayed.clock()),
            queue,
            job,
            args,
            track_status,
            unique=unique,
            retry=retry,
        )

    def enqueue_at_to(
        self,
        when: datetime | float,
        queue: str,
        job: JobRef,
        *args: Any,
        unique: Unique | None = None,
        retry: RetryPolicy | None = None,
    ) -> JobHandle | None:
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
    ) -> JobHandle | None:
        """``enqueue_to`` after ``delay``: Ruby's ``enqueue_in_with_queue``."""
        return self.enqueue_at_to(
            self._after(delay, self.delayed.clock()), queue, job, *args, unique=unique, retry=retry
        )
