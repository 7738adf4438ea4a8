"""What ``enqueue`` returns: the job's id, as a ``str`` (so it goes wherever an id went
before), that can also wait for the job's result and read its status.

Waiting never polls: the finish call that stores a result pushes one element to
the job's ready list (lib_finish.lua), and a waiter blocks on that list with
``BLMOVE`` of the list onto itself, which wakes every waiter and leaves the element
for a waiter that comes later. The result key is read before each wait, so a result
stored before the waiter came is returned at once.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn, Protocol, TypeVar

import redis
import redis.asyncio

from pyresque.exceptions import JobCancelled, JobFailed, ResultUnavailable
from pyresque.protocol.connection import MAX_BLOCK
from pyresque.protocol.keys import Keys
from pyresque.protocol.progress import Progress
from pyresque.protocol.results import ResultRecord
from pyresque.protocol.status import Status


class _Producer(Protocol):
    def result(self, job_id: str, timeout: float | None = None, queue: str = "") -> Any: ...
    def status(self, job_id: str, prefix: str = "", queue: str = "") -> Status | None: ...
    def progress(self, job_id: str) -> Progress | None: ...
    def cancel(self, job_id: str) -> dict[str, Any]: ...


class _AsyncProducer(Protocol):
    async def result(self, job_id: str, timeout: float | None = None, queue: str = "") -> Any: ...
    async def status(self, job_id: str, prefix: str = "", queue: str = "") -> Status | None: ...
    async def progress(self, job_id: str) -> Progress | None: ...
    async def cancel(self, job_id: str) -> dict[str, Any]: ...


_H = TypeVar("_H", bound="_Handle")


#: Classes of handles a producer keeps, one per (kind, queue); past this, handles of
#: other queues carry their producer and queue in a dict of their own.
MAX_BOUND = 1024


class _Handle(str):
    """A job id that keeps the producer it came from and the job's queue (on Redis
    Cluster its status and result are in its queue's slot: keys.py).

    Both are class attributes of a subclass made once per producer and queue
    (``_bound``), so a handle has no attribute dict: ``enqueue_many`` makes one per
    job, and each object the garbage collector tracks (a handle is one, its dict was
    another) brings its next full collection closer (issue 12: a fresh process's
    batch of 20,000 jobs spent a third of its CPU there)."""

    __slots__ = ()
    _producer: Any
    queue: str

    def __new__(cls: type[_H], job_id: str, producer: Any, queue: str = "") -> _H:
        made: dict[Any, type[_H]] | None = vars(producer).get(_TYPES)  # inline: every enqueue
        kind = made.get((cls, queue)) if made is not None else None
        if kind is not None:
            return str.__new__(kind, job_id)
        return _made(cls._bound(producer, queue), job_id, producer, queue)

    @classmethod
    def many(
        cls: type[_H], ids: list[str | None], producer: Any, queues: list[str]
    ) -> list[_H | None]:
        """A handle per id and queue (None stays None), as ``enqueue_many`` returns them."""
        kinds = dict[str, type[_H]]()
        handles: list[_H | None] = []
        for job_id, queue in zip(ids, queues, strict=True):
            if not job_id:
                handles.append(None)
                continue
            kind = kinds.get(queue) or kinds.setdefault(queue, cls._bound(producer, queue))
            handles.append(_made(kind, job_id, producer, queue))
        return handles

    @classmethod
    def _bound(cls: type[_H], producer: Any, queue: str) -> type[_H]:
        """The class of ``producer``'s handles of ``queue``, made once and kept by the
        producer (a class whose instances have a dict, past ``MAX_BOUND``)."""
        made: dict[Any, type] | None = vars(producer).get(_TYPES)
        if made is not None and (known := made.get((cls, queue))) is not None:
            return known  # every handle but the first of a queue: one lookup
        kind: type[_H] = cls
        while "_bound_base" in kind.__dict__:  # a handle's own type: its base kind
            kind = kind.__dict__["_bound_base"]
        made = vars(producer).setdefault(_TYPES, {})
        bound = made.get((kind, queue)) or made.get(kind)
        if bound is None:
            attrs: dict[str, Any] = {"_bound_base": kind, "__module__": kind.__module__}
            if len(made) < MAX_BOUND:
                attrs.update(__slots__=(), _producer=producer, queue=queue)
                bound = made[(kind, queue)] = type(kind.__name__, (kind,), attrs)
            else:
                bound = made[kind] = type(kind.__name__, (kind,), attrs)  # with a dict
            bound.__qualname__ = kind.__qualname__
        return bound

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)  # pickled (and copied) as the plain id


#: Where a producer keeps the classes of its handles (``_Handle._bound``).
_TYPES = "_pyresque_handle_types"


def _made(kind: type[_H], job_id: str, producer: Any, queue: str) -> _H:
    """A handle of class ``kind`` (``_Handle._bound``'s) for ``job_id``."""
    handle = str.__new__(kind, job_id)
    if "_producer" not in kind.__dict__:  # past MAX_BOUND: its own dict
        vars(handle).update(_producer=producer, queue=queue)
    return handle


class JobHandle(_Handle):
    """A job's id that can wait for the job's result (``result``) and read its status."""

    __slots__ = ()
    _producer: _Producer

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value, once it finished: waits up to ``timeout`` seconds
        (None: without limit; 0: not at all). Raises ``JobFailed`` with the remote
        error when the job failed, ``JobCancelled`` when it was cancelled, and
        ``ResultUnavailable`` when there is no result."""
        return self._producer.result(self, timeout, self.queue)

    def status(self) -> Status | None:
        """WAITING, RUNNING, FAILED, COMPLETE or CANCELLED; None when the status expired."""
        return self._producer.status(self, "", self.queue)

    def progress(self) -> Progress | None:
        """The job's last reported progress (``Job.progress``), or None."""
        return self._producer.progress(self)

    def cancel(self) -> dict[str, Any]:
        """``Resque.cancel`` of this job."""
        return self._producer.cancel(self)


class AsyncJobHandle(_Handle):
    """``JobHandle`` for ``AsyncResque``: ``await handle.wait()``, ``await handle.status()``."""

    __slots__ = ()
    _producer: _AsyncProducer

    async def wait(self, timeout: float | None = None) -> Any:
        """``JobHandle.result``, awaited."""
        return await self._producer.result(self, timeout, self.queue)

    async def status(self) -> Status | None:
        return await self._producer.status(self, "", self.queue)

    async def progress(self) -> Progress | None:
        return await self._producer.progress(self)

    async def cancel(self) -> dict[str, Any]:
        return await self._producer.cancel(self)


class Waiting:
    """One wait for a job's result: what to block on and for how long, and what a
    reply means. ``read`` is None while there is no result yet."""

    def __init__(self, keys: Keys, job_id: str, timeout: float | None) -> None:
        self.job_id, self.timeout = job_id, timeout
        self.key, self.ready = keys.result(job_id), keys.result_ready(job_id)
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def block(self) -> float:
        """Seconds to block next (a wait over ``MAX_BLOCK`` is made of several)."""
        if self._deadline is None:
            return MAX_BLOCK
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ResultUnavailable(
                f"job {self.job_id}: no result within {self.timeout:g} s (a job stores "
                "its result only when its class or its enqueue asks for it)"
            )
        return min(left, MAX_BLOCK)

    def woken(self, moved: object, raw: bytes | str | None) -> None:
        """After a wait that returned ``moved``: the ready element without a result
        means the result expired (or someone deleted it): waiting more would spin."""
        if moved is not None and raw is None:
            raise ResultUnavailable(f"job {self.job_id}: its result expired or was deleted")

    def value(self, raw: bytes | str) -> Any:
        """The value stored in ``raw``; raises ``JobFailed`` or ``ResultUnavailable``."""
        try:
            record = ResultRecord.decode(raw)
        except ValueError as exc:
            raise ResultUnavailable(f"job {self.job_id}: {exc}") from None
        if record.status == "failed":
            raise JobFailed(self.job_id, record.exception, record.error, record.backtrace)
        if record.status == "cancelled":
            raise JobCancelled(f"job {self.job_id} was cancelled")
        return record.value

    def unreadable(self, exc: redis.ResponseError) -> ResultUnavailable:
        return ResultUnavailable(f"job {self.job_id}: its result keys cannot be read ({exc})")


def no_slot(job_id: str) -> NoReturn:
    """On Redis Cluster, a wait for a job none of whose keys is anywhere yet: where its
    result will be (its queue's slot) is unknown."""
    raise ResultUnavailable(
        f"job {job_id}: neither its status nor its result is in any queue's slot yet; "
        "on Redis Cluster wait with the handle enqueue returned (it knows the job's "
        "queue), or pass queue="
    )


def wait_result(client: redis.Redis, keys: Keys, job_id: str, timeout: float | None) -> Any:
    """The result of ``job_id`` (``JobHandle.result``), waited for on ``client``."""
    waiting = Waiting(keys, job_id, timeout)
    try:
        raw = client.get(waiting.key)
        while raw is None:
            ready, block = waiting.ready, waiting.block()
            # Fractional seconds: Redis takes them, redis-py's annotation says int.
            moved = client.blmove(ready, ready, block, "RIGHT", "LEFT")  # type: ignore[arg-type]
            raw = client.get(waiting.key)
            waiting.woken(moved, raw)
    except redis.ResponseError as exc:  # a key of the wrong type: anyone may write them
        raise waiting.unreadable(exc) from None
    return waiting.value(raw)


async def wait_result_async(
    client: redis.asyncio.Redis, keys: Keys, job_id: str, timeout: float | None
) -> Any:
    """``wait_result`` on an asyncio client."""
    waiting = Waiting(keys, job_id, timeout)
    try:
        raw = await client.get(waiting.key)
        while raw is None:
            ready, block = waiting.ready, waiting.block()
            moved = await client.blmove(ready, ready, block, "RIGHT", "LEFT")  # type: ignore[arg-type]
            raw = await client.get(waiting.key)
            waiting.woken(moved, raw)
    except redis.ResponseError as exc:
        raise waiting.unreadable(exc) from None
    return waiting.value(raw)
