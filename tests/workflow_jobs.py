"""Job classes for the workflow tests (tests/test_workflows.py), for workers in the test's
process and for real ``pyresque worker`` processes (``--app tests/workflow_jobs.py``).
Each records its run in the list ``<E2E_NS>:test:ran`` (its name and arguments)."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import redis

from pyresque import Job


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["E2E_REDIS_URL"])


def record(name: str, args: list[Any]) -> int:
    """Append ``name`` and ``args`` to the run log; returns how often ``name`` ran with them."""
    client, ns = _client(), os.environ["E2E_NS"]
    try:
        client.rpush(f"{ns}:test:ran", json.dumps([name, args]))
        return int(client.incr(f"{ns}:test:runs:{name}:{json.dumps(args)}"))
    finally:
        client.close()


def ran(client: redis.Redis, namespace: str) -> list[list[Any]]:
    """The runs recorded so far (``record``), oldest first."""
    return [json.loads(item) for item in client.lrange(f"{namespace}:test:ran", 0, -1)]


class Step(Job):
    """Returns its first argument plus one, after recording its run."""

    store_result = True

    def perform(self, *args: Any) -> Any:
        record("Step", list(args))
        return args[0] + 1 if args and isinstance(args[0], int) else list(args)


class Fails(Job):
    """Fails until ``<ns>:test:fixed`` exists (then a retry from ``failed`` succeeds)."""

    def perform(self, *args: Any) -> str:
        record("Fails", list(args))
        client = _client()
        try:
            if not client.exists(f"{os.environ['E2E_NS']}:test:fixed"):
                raise RuntimeError("not fixed yet")
        finally:
            client.close()
        return "fixed"


class Callback(Job):
    def perform(self, *args: Any) -> None:
        record("Callback", list(args))


class KillsWorkerOnce(Job):
    """SIGKILLs the worker running it (and in fork mode the job's process) the first time
    it runs with these arguments."""

    def perform(self, *args: Any) -> None:
        if record("KillsWorkerOnce", list(args)) == 1:
            # The test starts each worker in a process group of its own: this kills the
            # worker, and in fork mode its zygote and this job's process too.
            os.killpg(os.getpgid(0), signal.SIGKILL)


class KillsWorkerAndFails(Job):
    """Kills the worker running it, every time; recovery then fails it at once
    (``on_crash = "fail"``) instead of running it again."""

    on_crash = "fail"

    def perform(self, *args: Any) -> None:
        record("KillsWorkerAndFails", list(args))
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _killed_at_the_gap(*_args: Any, **_kwargs: Any) -> None:
    """SIGKILLs this worker where it stands (its process group: see KillsWorkerOnce)."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


# A worker started with WF_KILL_AT set dies just after a workflow call that recorded a
# follow-up in the outbox, before it does it (tests/test_workflow_outbox.py): "cancelled",
# after a finish that cancelled dependents; "settle", after recovery failed a member.
if os.environ.get("WF_KILL_AT") == "cancelled":
    from pyresque.middleware import workflows as _middleware

    setattr(_middleware, "record_dependents_cancelled", _killed_at_the_gap)  # noqa: B010
elif os.environ.get("WF_KILL_AT") == "settle":
    from pyresque.worker import recovery as _recovery

    setattr(_recovery, "settle", _killed_at_the_gap)  # noqa: B010
