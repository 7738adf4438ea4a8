"""The keys a workflow call is given (lib_workflow.lua's ``wf_open``): the workflow
hashes, and every queue that jobs waiting for dependencies go to (``wf:queues``), so
the call can push any job it releases (docs/workflows.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis

from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys


def waiting_queues(client: redis.Redis, keys: Keys) -> tuple[str, ...]:
    """The queues that waiting jobs go to, as a workflow call must be given them. (A name
    that is not UTF-8 was not written by pyresque, which checks queue names.)"""
    members = cast("set[bytes]", client.smembers(keys.wf_queues))
    return tuple(sorted(raw(name).decode("utf-8", "replace") for name in members))


def workflow_keys(keys: Keys, queues: Sequence[str]) -> list[str]:
    """``wf:jobs``, ``wf:batches``, ``wf:expiry``, ``wf:queues``, ``queues``,
    ``queues-changed``, then each queue's list and wake list."""
    flow = [keys.wf_jobs, keys.wf_batches, keys.wf_expiry, keys.wf_queues]
    flow += [keys.queues, keys.queues_changed]
    for queue in queues:
        flow += [keys.queue(queue), keys.wake(queue)]
    return flow
