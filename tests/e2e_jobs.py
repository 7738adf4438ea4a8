"""Job classes for the end-to-end worker tests (tests/test_worker_*.py).

Real worker processes import this file with ``--app tests/e2e_jobs.py``; the tests
never import it. Every job records what it did as a JSON entry on the list
``<E2E_NS>:e2e:log`` through a fresh Redis connection (``E2E_REDIS_URL``), so a test
can wait for "job started" and check what ran, where, in which order, with which
arguments. Blocking jobs wait for ``<E2E_NS>:e2e:release:<tag>`` to exist.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import redis

from pyresque import DontPerform, Job, events
from pyresque.jobs.retry import RetryPolicy


def _connection() -> redis.Redis:
    return redis.Redis.from_url(os.environ["E2E_REDIS_URL"])


def _key(name: str) -> str:
    return f"{os.environ['E2E_NS']}:e2e:{name}"


def record(job: str, event: str, **fields: Any) -> None:
    """Append one entry to the test's log list (a fresh connection every time)."""
    entry = {
        "job": job,
        "event": event,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "t": time.time(),
        **fields,
    }
    client = _connection()
    try:
        client.rpush(_key("log"), json.dumps(entry))
    finally:
        client.close()


def _released(tag: str, limit: float) -> bool:
    """Poll (every 10 ms) until the release key for ``tag`` exists; False after ``limit`` s."""
    deadline = time.monotonic() + limit
    client = _connection()
    try:
        while time.monotonic() < deadline:
            if client.exists(_key(f"release:{tag}")):
                return True
            time.sleep(0.01)
        return False
    finally:
        client.close()


class Succeed(Job):
    """php-resque style (``self.args``): records itself and returns a value."""

    def perform(self) -> dict[str, Any]:
        record(
            "Succeed",
            "perform",
            args=self.args,
            queue=self.queue_name,
            payload=self.payload.to_dict(),
        )
        return {"echo": self.args, "ok": True}


_LEAKED: list[bytes] = []


class Leak(Job):
    """Keeps ``args.mb`` MB alive in its process (a leak), then records itself."""

    def perform(self) -> None:
        _LEAKED.append(b"x" * (int(self.args["mb"]) << 20))
        record("Leak", "perform", args=self.args)


class Positional(Job):
    """Ruby style: receives the payload's positional args."""

    def perform(self, *args: Any) -> list[Any]:
        record("Positional", "perform", args=list(args), queue=self.queue_name)
        return list(args)


class Boom(Job):
    """Raises; its ``on_failure`` hook records the exception."""

    def perform(self) -> None:
        record("Boom", "perform", args=self.args)
        raise RuntimeError(f"boom: {self.args}")

    def on_failure(self, exception: BaseException) -> None:
        record("Boom", "on_failure", exception=type(exception).__name__, error=str(exception))


class ExitThree(Job):
    def perform(self) -> None:
        record("ExitThree", "perform")
        os._exit(3)


class KillSelf(Job):
    def perform(self) -> None:
        record("KillSelf", "perform")
        os.kill(os.getpid(), signal.SIGKILL)


class Block(Job):
    """Records "started", then blocks until ``release:<args.tag>`` exists (at most
    ``args.limit`` seconds, default 30); records "interrupted" if stopped meanwhile."""

    def perform(self) -> dict[str, Any]:
        tag = str(self.args["tag"])
        try:
            # Inside the try: the test signals once "started" is in Redis, and on a busy
            # machine that TERM can land while record() is still closing its connection.
            record("Block", "started", tag=tag, payload=self.payload.to_dict())
            released = _released(tag, float(self.args.get("limit", 30)))
        except BaseException as exc:
            record("Block", "interrupted", tag=tag, exception=type(exc).__name__)
            raise
        record("Block", "finished", tag=tag, released=released)
        return {"tag": tag, "released": released}


class _SlowFinalizer:
    """Its finalizer records "finalizing" and runs 5 s: a TERM that lands in it is
    swallowed there (Python prints it), as one in a Redis client's collection was."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __del__(self) -> None:
        record("TermInFinalizer", "finalizing", tag=self.tag)
        ends = time.monotonic() + 5
        while time.monotonic() < ends:
            time.sleep(0.01)


class TermInFinalizer(Job):
    """Runs a slow finalizer, then blocks like ``Block``; records "interrupted" if
    stopped after the finalizer."""

    def perform(self) -> None:
        tag = str(self.args["tag"])
        holder = _SlowFinalizer(tag)
        del holder  # its finalizer runs now
        try:
            _released(tag, 30)
        except BaseException as exc:
            record("TermInFinalizer", "interrupted", tag=tag, exception=type(exc).__name__)
            raise


class IgnoreTerm(Job):
    """Ignores SIGTERM, then blocks like ``Block`` (only SIGKILL stops it)."""

    def perform(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tag = str(self.args["tag"])
        record("IgnoreTerm", "started", tag=tag)
        _released(tag, 30)
        record("IgnoreTerm", "finished", tag=tag)


class Skip(Job):
    """``set_up`` raises DontPerform: the job is skipped quietly."""

    def set_up(self) -> None:
        record("Skip", "set_up")
        raise DontPerform("not today")

    def perform(self) -> None:
        record("Skip", "perform")


class Hooks(Job):
    """Records every job hook; fails in ``perform`` when ``args.fail`` is true."""

    def set_up(self) -> None:
        record("Hooks", "set_up")

    def before_perform(self) -> None:
        record("Hooks", "before_perform")

    def perform(self) -> str:
        record("Hooks", "perform")
        if self.args.get("fail"):
            raise ValueError("hooked failure")
        return "hooked"

    def tear_down(self) -> None:
        record("Hooks", "tear_down")

    def after_perform(self) -> None:
        record("Hooks", "after_perform")

    def on_failure(self, exception: BaseException) -> None:
        record("Hooks", "on_failure", exception=type(exception).__name__)


class PhpJob(Job, name="My_Job"):
    """The job of php-resque's README: ``self.args`` is the enqueued data."""

    def perform(self) -> None:
        record("My_Job", "perform", args=self.args, job_id=self.job_id)


class Archive(Job):
    """The job of Ruby Resque's README: ``perform(44, "masterbrew")``."""

    def perform(self, *args: Any) -> None:
        number, name = args
        record("Archive", "perform", number=number, name=name)


def _on_fork_event(event: str) -> Any:
    def listener(job: Job) -> None:
        if isinstance(job, Hooks):
            record("Hooks", event)

    return listener


events.listen("before_fork", _on_fork_event("before_fork"))
events.listen("after_fork", _on_fork_event("after_fork"))


class Traced(Job):
    """Wrapped by ``TraceMiddleware``, which this module registers as an app would."""

    def perform(self) -> str:
        record("Traced", "perform")
        return "done"


class TraceMiddleware:
    """Registered by importing this module (``--app``): ``around_perform`` runs where the
    job runs (a child of the zygote), ``around_process`` in the worker."""

    def around_perform(self, job: Job, next: Callable[[], Any]) -> Any:
        if not isinstance(job, Traced):
            return next()
        record("Traced", "around_perform before")
        result = next()
        record("Traced", "around_perform after", result=result)
        return result

    def around_process(self, work: Any, next: Callable[[], Any]) -> Any:
        outcome = next()
        if isinstance(work.job, Traced):
            record("Traced", "around_process", kind=outcome.kind)
        return outcome


events.add(TraceMiddleware())


class DirtyHook(Job):
    """Exits dirty; its ``on_failure`` hook then runs in the worker process (the parent
    records dirty exits) and blocks there until ``release:<args.tag>`` exists."""

    def perform(self) -> None:
        os._exit(3)

    def on_failure(self, exception: BaseException) -> None:
        record("DirtyHook", "on_failure", error=str(exception))
        _released(str(self.args["tag"]), 10)


class AlwaysFails(Job):
    """Fails every attempt; its policy allows 3 attempts, 1 s apart."""

    retry = RetryPolicy(attempts=3, delays=(1,))

    def perform(self) -> None:
        record("AlwaysFails", "perform", args=self.args, attempts=self.payload.attempts)
        raise RuntimeError(f"attempt failed: {self.args}")
