"""Job classes for tests/test_reliability.py; real workers import this file with ``--app``.

The tests never import it. Every job records what it does as a JSON entry on the
list ``<REL_NS>:rel:log`` through a fresh Redis connection (``REL_REDIS_URL``).
Recording and the release polling of ``Block`` ride out a Redis restart: a job
must not fail because the test is restarting Redis under it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from pyresque import Job

T = TypeVar("T")

#: How long a job keeps retrying a Redis call while Redis is away.
PATIENCE = 30.0


def _key(name: str) -> str:
    return f"{os.environ['REL_NS']}:rel:{name}"


def _with_redis(step: Callable[[redis.Redis], T]) -> T:
    """Run ``step`` on a fresh connection, retrying while Redis is unavailable."""
    deadline = time.monotonic() + PATIENCE
    while True:
        client = redis.Redis.from_url(
            os.environ["REL_REDIS_URL"], socket_connect_timeout=1, socket_timeout=5
        )
        try:
            return step(client)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            if time.monotonic() >= deadline:
                raise
        finally:
            client.close()
        time.sleep(0.05)


def record(job: str, event: str, **fields: Any) -> None:
    """Append one entry to the test's log list."""
    entry = {
        "job": job,
        "event": event,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "t": time.time(),
        **fields,
    }
    _with_redis(lambda r: r.rpush(_key("log"), json.dumps(entry)))


def wait_release(tag: str, limit: float = 30.0) -> bool:
    """Poll every 10 ms until ``release:<tag>`` exists; False after ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _with_redis(lambda r: r.exists(_key(f"release:{tag}"))):
            return True
        time.sleep(0.01)
    return False


class Succeed(Job):
    def perform(self) -> Any:
        record("Succeed", "perform", args=self.args, payload=self.payload.to_dict())
        return self.args


class Block(Job):
    """Records "started", blocks until ``release:<tag>``, records "finished".

    With ``fail_first``, the first delivery (no ``attempts`` yet) raises after the
    release, so a test can tell whose outcome was recorded.
    """

    def perform(self) -> str:
        tag = str(self.args["tag"])
        try:
            # Inside the try: a TERM may land while "started" is being written, after
            # the test has seen it.
            record("Block", "started", tag=tag, payload=self.payload.to_dict())
            released = wait_release(tag)
        except BaseException as exc:
            record("Block", "interrupted", tag=tag, exception=type(exc).__name__)
            raise
        record("Block", "finished", tag=tag, released=released)
        if self.args.get("fail_first") and self.payload.attempts == 0:
            raise RuntimeError("first delivery fails")
        return tag


class IgnoreTerm(Job):
    """Ignores SIGTERM, then blocks like ``Block``: only SIGKILL stops it."""

    def perform(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tag = str(self.args["tag"])
        record("IgnoreTerm", "started", tag=tag, payload=self.payload.to_dict())
        wait_release(tag)
        record("IgnoreTerm", "finished", tag=tag)


class KillParent(Job):
    """Kills the worker that runs it: the parent of the zygote that forked this child."""

    def perform(self) -> None:
        record(type(self).__name__, "started", payload=self.payload.to_dict())
        os.kill(_parent_of(os.getppid()), signal.SIGKILL)
        time.sleep(30)  # PR_SET_PDEATHSIG kills the zygote with the worker, and this child


def _parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise LookupError(pid)


class KillParentFailOnCrash(KillParent):
    """The same, for a job that asks for Resque's behaviour: fail after one crash."""

    on_crash = "fail"


class _SleepsLong(Job, register=False):
    """Records "started", sleeps 60 s, records "stopped" (with the exception) if stopped."""

    def perform(self) -> None:
        name = type(self).__name__
        record(name, "started")
        try:
            time.sleep(60)
        except BaseException as exc:
            record(name, "stopped", exception=type(exc).__name__)
            raise


class SleepsPastTimeout(_SleepsLong):
    """Has a class timeout of 0.5 s and sleeps far longer."""

    timeout = 0.5


class Sleeps(_SleepsLong):
    """No class timeout: sleeps unless the enqueue gave it a timeout."""


class Big(Job):
    """Takes one large string argument (Ruby style) and records its length."""

    def perform(self, data: str) -> int:
        record("Big", "perform", length=len(data))
        return len(data)
