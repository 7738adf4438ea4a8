"""What a producer decides before it writes, without any I/O: shared by ``Resque``
and ``AsyncResque`` so both write the same payloads with the same script calls.

For each job: the checks (checks.py), the payload, the enqueue middleware chain
(middleware/chain.py) and then the one script call that writes it (a ``Call``:
the script's name, KEYS and ARGV, from calls.py and protocol/delayed.py). A
producer only runs the call on its connection, blocking or awaited, and then the
``after_enqueue`` hooks. A change to a script's KEYS or ARGV is made in calls.py
(or delayed.py) and so reaches both producers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from pyresque.client.calls import Enqueued, ScriptCalls
from pyresque.client.checks import (
    check_args,
    check_job,
    check_queue,
    check_result_ttl,
    check_timeout,
    wire,
)
from pyresque.client.workflows import Node, WorkflowWriter, no_workflow, written_reply
from pyresque.jobs.events import Events
from pyresque.jobs.events import events as default_events
from pyresque.jobs.job import Job, JobFunction, JobRef, Registry
from pyresque.jobs.job import registry as default_registry
from pyresque.middleware import unique
from pyresque.middleware.chain import Chain, Enqueuing, Middleware
from pyresque.middleware.hooks import ResqueHooks
from pyresque.protocol import push
from pyresque.protocol.delayed import due_second, item_json, schedule_call
from pyresque.protocol.durability import Replicas
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Dialect, Payload
from pyresque.protocol.results import ttl_for
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.unique_lock import UniqueLock

#: Payloads per enqueue.lua call in ``enqueue_many`` (Lua's unpack has a limit).
CHUNK = 1000


class Call(NamedTuple):
    """One script call. ``refusable``: a false reply means nothing was written (an
    equal unique job holds the lock), so the job was not enqueued. ``lock``: on Cluster,
    the unique lock taken before the call (apart.py; held by another: the reply is 0).
    (Named tuples, as ``Planned``: one is made per enqueue, the cheapest object to make.)"""

    script: str
    keys: list[str]
    args: list[Any]
    refusable: bool = False
    lock: UniqueLock | None = None


class Planned(NamedTuple):
    """A job that passed the chain, and the call that writes it."""

    item: Enqueued
    payload: Payload
    call: Call


@dataclass
class Batch:
    """What ``enqueue_many`` writes: ``calls`` to pipeline in order, and the ids to
    return (None where the chain refused a job). ``settle`` reads the replies."""

    ids: list[str | None] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # each id's queue
    calls: list[Call] = field(default_factory=list)
    # (index in calls, index in ids, planned) of every job written by a call of its own
    _own: list[tuple[int, int, Planned]] = field(default_factory=list)
    # the jobs with workflow options: one wf_enqueue.lua call, made before ``calls``
    flow: tuple[WorkflowWriter, Call] | None = None
    # The jobs written by shared calls, and their payloads: two lists, not a tuple per
    # job (each is an object the garbage collector tracks, and a batch of thousands of
    # them brought its full collections into the call: issue 12).
    _items: list[Enqueued] = field(default_factory=list)
    _payloads: list[Payload] = field(default_factory=list)

    @property
    def queues(self) -> list[str]:
        """The queues the batch writes to."""
        return [item.queue for item in self._items] + [p.item.queue for _, _, p in self._own]

    def settle(self, replies: list[Any]) -> Iterator[tuple[Enqueued, Payload]]:
        """The jobs enqueued, given the pipeline's replies; a refused unique job's id
        becomes None."""
        written = []  # (not "own": test_acl reads own.<name>( as a Redis call)
        for reply, index, planned in self._own:
            if replies[reply]:
                written.append((planned.item, planned.payload))
            else:
                self.ids[index] = None
        return itertools.chain(zip(self._items, self._payloads, strict=True), written)


class Producer:
    """The I/O-free half of a producer for one namespace: see the module docstring."""

    durability: Replicas | None  # set by the subclass

    def __init__(
        self,
        namespace: str,
        *,
        dialect: Dialect | str,
        registry: Registry | None,
        events: Events | None,
        strict: bool,
        cluster: bool = False,
    ) -> None:
        self.namespace = namespace
        self.keys = Keys.for_namespace(namespace, cluster=cluster)
        self._registered: set[str] = set()  # queues named in the home slot (Cluster)
        self.dialect = Dialect(dialect)
        self.registry = registry or default_registry
        self.events = events or default_events
        self.strict = strict
        self._calls = ScriptCalls(self.keys)
        #: Where middleware are added (``middleware.add(obj)``; chain.py says where each runs).
        self.middleware = Middleware(self.events)
        self._chain: Chain[Enqueuing, Payload | None] = Chain(self.events, "around_enqueue")
        self._hooks = ResqueHooks(self.events)

    def _unregistered(self, queues: Iterable[str]) -> list[str]:
        """On Cluster the ``queues`` set is in the home slot, apart from the queues'
        slots: the queues this producer has not named there yet (it names each once,
        before its first job)."""
        if not self.keys.clustered:
            return []
        new = [queue for queue in dict.fromkeys(queues) if queue not in self._registered]
        self._registered.update(new)
        return new

    def _plain(self, call: Call) -> bool:
        """Whether ``call`` may be written as Resque's own pipeline (protocol/push.py)."""
        return push.plain(call.script, call.keys) and not (self.durability or self.keys.clustered)

    # --- one job -------------------------------------------------------------------

    def _plan(self, item: Enqueued) -> Planned | None:
        """The call that enqueues ``item`` now (None: the chain refused it)."""
        if item.depends_on or item.dependable:
            return self._plan_dependent(item)
        job = self._prepare(item)
        return None if job is None else self._call(item, job)

    def _plan_dependent(self, item: Enqueued) -> Planned | None:
        """The wf_enqueue.lua call of one job with dependencies (or that others may
        depend on); None when the chain refused it."""
        job = self._prepare(item)
        if job is None:
            return None
        writer = WorkflowWriter(self.keys, lambda _: job)
        writer.add(item)
        keys, args = writer.call()
        return Planned(item, writer.written[0][1], Call("wf_enqueue", keys, args))

    def _workflow(self, node: Node) -> tuple[WorkflowWriter, Call]:
        """The one wf_enqueue.lua call that writes the workflow ``node``."""
        writer = WorkflowWriter(self.keys, self._prepare)
        writer.add(node)
        keys, args = writer.call()
        return writer, Call("wf_enqueue", keys, args)

    def _workflow_written(self, writer: WorkflowWriter, reply: Any) -> list[str]:
        """After a workflow's call: its jobs' ids, once their ``after_enqueue`` hooks ran
        (``LookupError`` when a dependency was unknown: nothing was written)."""
        written_reply(reply)
        for item, payload in writer.written:
            self._after_enqueue(item, payload)
        return [payload.id or "" for _, payload in writer.written]

    def _call(self, item: Enqueued, job: Enqueuing) -> Planned:
        payload, lock = job.payload, job.lock
        if lock is not None and self.keys.clustered:  # the lock in a slot of its own
            keys, args = self._calls.enqueue(item, [payload])
            return Planned(item, payload, Call("enqueue", keys, args, True, lock))
        if lock is not None:
            keys, args = self._calls.unique(item, payload, lock)
            return Planned(item, payload, Call("enqueue_unique", keys, args, refusable=True))
        keys, args = self._calls.enqueue(item, [payload])
        return Planned(item, payload, Call("enqueue", keys, args))

    @staticmethod
    def _after(delay: float | timedelta, now: float) -> float:
        """The time ``delay`` (seconds or a timedelta) after ``now``: ``enqueue_in``'s."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        return now + seconds

    def _plan_at(self, when: datetime | float, item: Enqueued, now: float) -> Planned | None:
        """The call that enqueues ``item`` at ``when``: into the delayed queue, or at
        once when ``when`` is not after ``now`` (as Ruby does)."""
        if item.depends_on:
            no_workflow(item, "a delayed job")
        timestamp = due_second(when)
        if timestamp <= int(now):
            return self._plan(item)
        job = self._prepare(item, "later")
        if job is None:
            return None
        payload = job.payload
        if item.dependable:  # its record and its place in the schedule in one call
            writer = WorkflowWriter(self.keys, lambda _: job)
            writer.add(item)
            writer.delay(timestamp, item_json(payload, item.queue, item.at_front))
            return Planned(item, payload, Call("wf_enqueue", *writer.call()))
        shard = self.keys.for_queue(item.queue)  # on Cluster, it waits in its queue's slot
        status = None
        if item.track_status and payload.id:
            status = (shard.status(payload.id, payload.prefix), waiting_packet())
        entry = item_json(payload, item.queue, item.at_front)
        wire(entry)
        apart = job.lock if self.keys.clustered else None  # on Cluster: taken first
        lock = None if apart else job.lock
        keys, args = schedule_call(shard, timestamp, entry, lock, status, job.payload.id)
        return Planned(item, payload, Call("schedule", keys, args, refusable=True, lock=apart))

    # --- many jobs ------------------------------------------------------------------

    def _batch(self, jobs: Iterable[Enqueued]) -> Batch:
        """The calls of ``enqueue_many``: runs of jobs that share a queue and options
        go in one enqueue.lua call (``CHUNK`` at most), a unique job in a call of its
        own, the jobs with ``depends_on`` or ``dependable`` in one wf_enqueue.lua call
        (``flow``). Every job is checked before any call is made."""
        jobs = list(jobs)
        for item in jobs:
            self._check(item)
        plan = Batch()
        prepared: list[Enqueuing] = []  # the next workflow job's, for the writer
        writer = None
        run: list[Enqueued] = []  # the jobs of the next shared call, and their payloads
        payloads: list[Payload] = []
        run_key: tuple[str, bool, bool] | None = None  # the batch key of the jobs in ``run``

        def flush() -> None:
            if run:
                keys, args = self._calls.enqueue(run[0], payloads)
                plan.calls.append(Call("enqueue", keys, args))
                plan._items.extend(run)
                plan._payloads.extend(payloads)
            run.clear()
            payloads.clear()

        for item in jobs:
            job = self._chained(item)
            plan.ids.append(job.payload.id if job else None)
            plan.where.append(item.queue)
            if job is None:
                continue
            if item.depends_on or item.dependable:
                writer = writer or WorkflowWriter(self.keys, lambda _: prepared.pop())
                prepared.append(job)
                writer.add(item)
                continue
            if job.lock is not None:
                flush()  # keeps the order of jobs on the queue
                plan._own.append((len(plan.calls), len(plan.ids) - 1, self._call(item, job)))
                plan.calls.append(plan._own[-1][2].call)
                continue
            key = item.batch_key
            if run and (run_key != key or len(run) >= CHUNK):
                flush()
            run_key = key
            run.append(item)
            payloads.append(job.payload)
        flush()
        if writer is not None:
            plan.flow = (writer, Call("wf_enqueue", *writer.call()))
        return plan

    # --- the steps ------------------------------------------------------------------

    @staticmethod
    def _check(item: Enqueued) -> None:
        """Raise TypeError/ValueError, saying what to change, for a job no worker could take."""
        check_queue(item.queue)
        check_job(item.job)
        item.args = check_args(item.args)
        check_timeout(item.timeout)
        check_result_ttl(item.result_ttl)

    def _prepare(self, item: Enqueued, when: str = "now") -> Enqueuing | None:
        """The job to write for ``item``, after the checks and the enqueue chain (None:
        refused)."""
        self._check(item)
        return self._chained(item, when)

    def _chained(self, item: Enqueued, when: str = "now") -> Enqueuing | None:
        """``_prepare`` for an ``item`` already checked (``_batch`` checks them all first)."""
        name, job_class = self._named(item.job)
        if self.strict and name not in self.registry:
            raise LookupError(f"no job class is registered under {name!r} (strict mode)")
        ttl = item.result_ttl
        if job_class is not None and not ttl:
            ttl = item.result_ttl = ttl_for(job_class.store_result, job_class.result_ttl)
        if ttl:
            item.track_status = True  # who waits for a result can also see its status
        flow = item.dependable or bool(item.depends_on)  # a workflow's jobs need ids
        dialect = Dialect.PHP if item.track_status or item.prefix or flow else self.dialect
        payload = Payload.build(name, item.args, dialect, prefix=item.prefix)
        extra = payload.extra
        if ttl:
            extra["result_ttl"] = ttl
        if flow:
            extra["workflow"] = True
        if item.timeout is not None:
            extra["timeout"] = item.timeout
        if item.retry is not None:
            extra["retry"] = item.retry.to_dict()
        # Not encoded here: the script call encodes each payload once, and raises
        # TypeError/ValueError (payload.dumps, producer.wire) before anything is written.
        job = Enqueuing(item.queue, payload, job_class, item.unique, when)
        if not self._chain.steps():  # no middleware added: no chain to build (every job)
            return job if self._admit(job) is not None else None
        return job if self._chain(job, partial(self._admit, job)) is not None else None

    def _admit(self, job: Enqueuing) -> Payload | None:
        """The innermost step of the enqueue chain, a plain call rather than two more
        chain steps because it runs for every job: the Resque hooks (``before_enqueue``
        may refuse it), then the unique lock that the write takes."""
        if not self._hooks.admits(job):
            return None
        unique.stamp_lock(job)
        return job.payload

    def _written(
        self, planned: Planned, reply: Any, durable: bool, policy: Replicas | None
    ) -> str | None:
        """After a planned job's call: None when it was refused (an equal unique job
        holds the lock), ``NotReplicated`` when ``policy``'s replicas did not acknowledge
        it, else its id, once its ``after_enqueue`` hooks ran."""
        if planned.call.refusable and not reply:
            return None
        written_reply(reply)
        if not durable and policy is not None:
            raise policy.not_replicated(f"job {planned.payload.id or 'enqueued'}")
        self._after_enqueue(planned.item, planned.payload)
        return planned.payload.id

    def _batch_written(
        self, batch: Batch, replies: list[Any], policy: Replicas | None
    ) -> list[str | None]:
        """After ``enqueue_many``'s calls (their replies, then the replicas that
        acknowledged them all when there is a ``policy``): the ids, hooks run."""
        if policy is not None and replies.pop() < policy.count:
            raise policy.not_replicated(f"a batch of {len(batch.calls)} call(s)")
        for item, payload in batch.settle(replies):
            self._after_enqueue(item, payload)
        return batch.ids

    def _after_enqueue(self, item: Enqueued, payload: Payload) -> None:
        job_class = self._job_class(item.job)
        if job_class:
            job_class.after_enqueue(item.queue, payload.args, payload.id)
        self.events.trigger(
            "after_enqueue", payload.class_name, payload.args, item.queue, payload.id
        )

    def _job_class(self, job: JobRef) -> type[Job] | None:
        return self._named(job)[1]

    def _named(self, job: JobRef) -> tuple[str, type[Job] | None]:
        """The Resque name of ``job`` and its class (None: a name no class registered)."""
        if isinstance(job, str):
            return job, self.registry.find(job)
        job_class = job.job_class if isinstance(job, JobFunction) else job
        return job_class.resque_name, job_class

    @staticmethod
    def _default_queue(job: type[Job] | JobFunction[..., Any]) -> str:
        """The queue ``enqueue_job`` uses: the job class's own."""
        job_class = job.job_class if isinstance(job, JobFunction) else job
        if not job_class.queue:
            raise ValueError(f"{job_class.resque_name} has no default queue; use enqueue_to")
        return job_class.queue

    def payload_for(self, item: Enqueued) -> Payload | None:
        """The payload ``enqueue`` would write for ``item``, after the ``before_enqueue``
        hooks (None when one vetoes it): for producers that push it themselves (cron)."""
        job = self._prepare(item, "push")
        return job.payload if job else None

    def announce(self, item: Enqueued, payload: Payload) -> None:
        """Run the ``after_enqueue`` hooks of a job a producer pushed itself."""
        self._after_enqueue(item, payload)
