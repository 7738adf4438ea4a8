"""Workflows, producer side: ``chain`` and ``group``, and how a workflow (or one job
with ``depends_on``) is written: in one atomic call of wf_enqueue.lua, whose KEYS and
ARGV ``WorkflowWriter`` builds without I/O, for ``Resque`` and ``AsyncResque`` alike
(on Redis Cluster, then the steps of protocol/workflow.py's ``enqueued_sharded``).
The worker side is middleware/workflows.py and lib_workflow.lua; docs/workflows.md.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from pyresque.client.calls import Enqueued
from pyresque.client.checks import wire
from pyresque.middleware.chain import Enqueuing
from pyresque.protocol.delayed import ID_GRACE
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.workflow import workflow_keys

#: Where a step's previous result goes in its payload (its last argument): the payload is
#: stored split around it, and the finish that releases the step puts the result there.
_MARK = "\x00pyresque:previous-result\x00"
_POLICIES = ("cancel", "run")


@dataclass(frozen=True)
class Chain:
    """Steps that run one after the other (``chain``)."""

    steps: tuple[Node, ...]
    pass_result: bool = False


@dataclass(frozen=True)
class Group:
    """Members that run in parallel, as one batch with callbacks (``group``)."""

    members: tuple[Node, ...]
    on_success: Enqueued | None = None
    on_complete: Enqueued | None = None
    name: str = ""


Node: TypeAlias = "Enqueued | Chain | Group"


def step(queue: str, job: Any, *args: Any, **options: Any) -> Enqueued:
    """One job of a workflow: ``Enqueued(queue, job, list(args), **options)``."""
    return Enqueued(queue, job, list(args), **options)


def chain(*steps: Node, pass_result: bool = False) -> Chain:
    """Run ``steps`` one after another: each starts once the one before succeeded (a group:
    all its members). With ``pass_result``, a step gets the previous step's return value
    as its last argument (after a group: the list of its last jobs' values)."""
    if not steps:
        raise ValueError("a chain needs at least one step")
    return Chain(tuple(steps), pass_result)


def group(
    *members: Node,
    on_success: Enqueued | None = None,
    on_complete: Enqueued | None = None,
    name: str = "",
) -> Group:
    """Run ``members`` in parallel as one batch (its counts: ``Resque.batch``).
    ``on_success`` is enqueued once every member succeeded, ``on_complete`` once every
    member ended, whatever the outcome (Sidekiq's batch callbacks, Celery's chords)."""
    if not members:
        raise ValueError("a group needs at least one member")
    return Group(tuple(members), on_success, on_complete, name)


H = TypeVar("H", bound=str)


@dataclass
class Workflow(Generic[H]):
    """What ``enqueue_workflow`` wrote: every job's handle in the order written, the
    batches' ids (outermost first), and ``ends``: the jobs a next step would wait for."""

    jobs: list[H] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    ends: list[H] = field(default_factory=list)

    @property
    def batch(self) -> str | None:
        """The outermost batch's id (None: no group)."""
        return self.batches[0] if self.batches else None


def workflow_of(writer: WorkflowWriter, ids: list[str], handle: Callable[[str], H]) -> Workflow[H]:
    """The ``Workflow`` of a written ``writer``, its ids made handles by ``handle``."""
    handles = {job_id: handle(job_id) for job_id in ids}
    return Workflow(list(handles.values()), writer.batch_ids, [handles[i] for i in writer.ends])


class WorkflowWriter:
    """Builds the one wf_enqueue.lua call of a workflow. ``prepare`` runs a job through the
    producer's checks and enqueue chain (None: a hook refused it)."""

    def __init__(
        self,
        keys: Keys,
        prepare: Callable[[Enqueued], Enqueuing | None],
    ) -> None:
        self._keys = keys
        self._prepare = prepare
        self._jobs: list[dict[str, Any]] = []
        self._batches: list[dict[str, Any]] = []
        self._payloads: list[bytes] = []
        self._queues: dict[str, None] = {}  # in order of first use
        self.written: list[tuple[Enqueued, Payload]] = []
        self._delayed: list[tuple[int, str, str]] = []  # (timestamp, item, id) of ``delay``
        self.batch_ids: list[str] = []  # outermost first
        self.ends: list[str] = []  # of the last node added

    def add(self, node: Node) -> list[str]:
        """Add the workflow ``node``; returns its ends' ids."""
        self.ends = self._add(node, [], [], False)
        return self.ends

    def _add(self, node: Node, after: list[str], batches: list[str], takes: bool) -> list[str]:
        if isinstance(node, Enqueued):
            return [self._job(node, after, batches, takes)]
        if isinstance(node, Chain):
            ends = after
            for index, inner in enumerate(node.steps):
                ends = self._add(inner, ends, batches, node.pass_result and index > 0)
            return ends
        if isinstance(node, Group):
            return self._group(node, after, batches, takes)
        raise TypeError(f"a workflow step is an Enqueued, chain or group, not {node!r}")

    def _group(self, node: Group, after: list[str], batches: list[str], takes: bool) -> list[str]:
        batch_id = uuid.uuid4().hex
        self.batch_ids.append(batch_id)
        first = len(self._jobs)
        ends: list[str] = []
        for member in node.members:
            ends += self._add(member, after, [*batches, batch_id], takes)
        members = [job["id"] for job in self._jobs[first:]]
        callbacks: dict[str, str | None] = {"on_success": None, "on_complete": None}
        for name, callback, policy in (
            ("on_success", node.on_success, "cancel"),
            ("on_complete", node.on_complete, "run"),
        ):
            if callback is not None:
                with_policy = dataclasses.replace(callback, on_dependency_failure=policy)
                callbacks[name] = self._job(with_policy, members, batches, False)
        self._batches.append(
            {
                "id": batch_id,
                "total": len(members),
                "name": node.name,
                "parent": batches[-1] if batches else None,
                **callbacks,
            }
        )
        return ends

    def _job(self, item: Enqueued, after: list[str], batches: list[str], takes: bool) -> str:
        if item.on_dependency_failure not in _POLICIES:
            raise ValueError(
                f'on_dependency_failure must be "cancel" or "run", '
                f"got {item.on_dependency_failure!r}"
            )
        deps = [*dependency_ids(item.depends_on), *after]
        item = dataclasses.replace(item, dependable=True)  # the caller's stays as it was
        job = self._prepare(item)
        if job is None:
            raise ValueError(f"a before_enqueue hook refused the workflow's {item.job!r} job")
        if job.lock is not None:
            raise ValueError("a unique job cannot be part of a workflow")
        payload = job.payload
        assert payload.id  # a workflow job always has an id (producer.py)
        spec: dict[str, Any] = {
            "id": payload.id,
            "q": item.queue,
            "front": item.at_front,
            "fail": item.on_dependency_failure,
            "deps": deps,
            "b": batches,
            "st": item.track_status,
        }
        if takes and deps:
            head, tail = _split(payload)
            spec["p"], spec["p2"] = self._payload(head), self._payload(tail)
        else:
            spec["p"] = self._payload(wire(payload.encode()))
        self._queues[item.queue] = None
        self._jobs.append(spec)
        self.written.append((item, payload))
        return payload.id

    def delay(self, timestamp: int, item: str) -> None:
        """The last job added goes into resque-scheduler's layout (``item``, due at
        ``timestamp``) instead of onto its queue; its dependents wait for its finish. On
        Cluster the caller puts it there, in its queue's slot (workflow.py's ``push_of``)."""
        job = self._jobs[-1]
        job["at"], job["item"] = timestamp, self._payload(wire(item))
        job["expires"] = timestamp + ID_GRACE  # its id index (delayed.py)
        self._delayed.append((timestamp, item, job["id"]))

    def _payload(self, data: bytes) -> int:
        self._payloads.append(data)
        return len(self._payloads) + 1  # its ARGV index (ARGV[1] is the spec)

    def call(self) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of wf_enqueue.lua."""
        if self._keys.clustered:
            return self._sharded_call()
        keys = self._keys
        queues = list(self._queues)
        call_keys = workflow_keys(keys, queues)
        for (_, payload), job in zip(self.written, self._jobs, strict=True):
            if job["st"]:
                call_keys.append(keys.status(job["id"], payload.prefix))
        for job in self._jobs:  # a dependency that already succeeded gives its stored result
            if "p2" in job:
                call_keys += [keys.result(dep) for dep in job["deps"]]
        for timestamp, item, job_id in self._delayed:
            call_keys += [keys.delayed_schedule, keys.delayed(timestamp), keys.timestamps(item)]
            call_keys.append(keys.delayed_id(job_id))
        spec = {
            "queues": queues,
            "status": waiting_packet(),
            "batches": self._batches,
            "jobs": self._jobs,
        }
        return call_keys, [dumps(spec), *self._payloads]

    def _sharded_call(self) -> tuple[list[str], list[Any]]:
        """wf_enqueue.lua's call on Redis Cluster: in the workflow records' slot (the
        home slot), with none of the queues' keys, which are in other slots: the caller
        sets the statuses (``statuses``) and pushes the jobs the call released."""
        spec = {"sharded": True, "queues": [], "batches": self._batches, "jobs": self._jobs}
        return workflow_keys(self._keys.home, []), [dumps(spec), *self._payloads]


def flow_statuses(keys: Keys, written: Sequence[tuple[Enqueued, Payload]], reply: Any) -> list[str]:
    """On Cluster, after the wf_enqueue.lua call that wrote ``written`` (``reply``): the
    WAITING status keys of the jobs that track theirs, each in its queue's slot, which its
    producer sets before it pushes any (``LookupError``, nothing written: a dependency
    unknown)."""
    written_reply(reply)
    return [
        keys.for_queue(item.queue).status(payload.id or "", payload.prefix)
        for item, payload in written
        if item.track_status
    ]


def no_workflow(item: Enqueued, where: str) -> None:
    """ValueError for a job with dependencies where they are not supported."""
    if item.depends_on:
        raise ValueError(
            f"{where} cannot take depends_on (a dependency's finish releases a job onto its "
            "queue, not into the schedule): enqueue it now with depends_on, adding a "
            "dependable delayed job to wait for (docs/workflows.md)"
        )


def dependency_ids(depends_on: Sequence[str]) -> list[str]:
    """``depends_on`` as ids; ValueError for one that is not a job id (a non-empty str)."""
    if isinstance(depends_on, str):
        raise ValueError("depends_on is a list of job ids (or handles), not one string")
    ids = []
    for dependency in depends_on:
        if not isinstance(dependency, str) or not dependency:
            raise ValueError(f"depends_on holds job ids (or handles), got {dependency!r}")
        wire(dumps(dependency))  # valid Unicode, or ValueError saying so
        ids.append(str(dependency))
    return ids


def _split(payload: Payload) -> tuple[bytes, bytes]:
    """A payload's text before and after where the previous result goes (its last argument)."""
    payload.args.append(_MARK)
    try:
        text = wire(payload.encode())
    finally:
        payload.args.pop()
    mark = wire(dumps(_MARK))
    if text.count(mark) != 1:
        raise ValueError("a job that takes the previous result cannot hold pyresque's marker")
    head, _, tail = text.partition(mark)
    return head, tail


def written_reply(reply: Any) -> None:
    """Raise ``LookupError`` for wf_enqueue.lua's refusal: a dependency it does not know."""
    if isinstance(reply, list) and reply and reply[0] in (b"unknown", "unknown"):
        unknown = reply[1].decode("utf-8", "replace") if isinstance(reply[1], bytes) else reply[1]
        raise LookupError(
            f"dependency {unknown!r} is not a workflow job: enqueue it with dependable=True "
            "(or depends_on, or in a chain or group), or it ended more than 7 days ago"
        )
