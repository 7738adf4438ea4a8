"""The durability policy: a write counts as done only once replicas have it.

Redis replicates asynchronously: a write the master acknowledged may not have
reached any replica when the master dies, and the replica Sentinel promotes then
lacks it. ``Replicas(n, timeout_ms)`` makes a write wait (``WAIT n timeout_ms``, on
the same connection, in the same round trip) until ``n`` replicas acknowledged it.
Sentinel promotes the most up-to-date replica it can reach, so a write one reachable
replica acknowledged survives the loss of the master. What each writer does when
fewer replicas answer in time (the producer raises ``NotReplicated``; the worker
does not start a job whose claim was not replicated) and what is lost without the
policy: docs/production.md (Durability).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from pyresque.exceptions import BadRedisURL, NotReplicated
from pyresque.protocol import cluster, scripts

#: The environment variable that turns the policy on: ``N`` or ``N:TIMEOUT_MS``.
ENV_VAR = "PYRESQUE_WAIT_REPLICAS"
DEFAULT_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class Replicas:
    """Wait until ``count`` replicas acknowledged a write, for at most ``timeout_ms``."""

    count: int = 1
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"Replicas: count must be a whole number >= 1, not {self.count!r}")
        # WAIT's 0 means "for ever": a write would hang as long as a replica is missing.
        if not isinstance(self.timeout_ms, int) or self.timeout_ms < 1:
            raise ValueError(
                f"Replicas: timeout_ms must be a whole number of milliseconds >= 1, "
                f"not {self.timeout_ms!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Replicas:
        """``N`` or ``N:TIMEOUT_MS`` (``PYRESQUE_WAIT_REPLICAS``, ``--wait-replicas``)."""
        count, _, timeout = text.strip().partition(":")
        try:
            return cls(int(count), int(timeout) if timeout else DEFAULT_TIMEOUT_MS)
        except ValueError as exc:
            raise ValueError(
                f"cannot read the durability policy {text!r}: write N or N:TIMEOUT_MS, "
                f"such as 1 or 1:500 ({exc})"
            ) from None

    def run(
        self, client: redis.Redis, name: str, keys: Sequence[str | bytes], args: list[Any]
    ) -> tuple[Any, bool]:
        """Run script ``name`` and wait for the replicas: (its reply, whether enough
        replicas acknowledged it in time)."""
        if cluster.is_cluster(client) and keys:  # WAIT on the connection of the script's node
            return cluster.on_node_of(
                client, keys[0], lambda node: self.run(node, name, keys, args)
            )
        reply, acked = scripts.run_and_wait(client, name, keys, args, (self.count, self.timeout_ms))
        return reply, acked >= self.count

    def not_replicated(self, what: str) -> NotReplicated:
        return NotReplicated(
            f"{what} was written to the Redis master, but fewer than {self.count} replica(s) "
            f"acknowledged it within {self.timeout_ms} ms: it is lost if the master fails "
            "before replicating it (check the replicas and their lag)"
        )


def from_env(environ: Mapping[str, str] = os.environ) -> Replicas | None:
    """The policy ``PYRESQUE_WAIT_REPLICAS`` asks for, or None."""
    text = environ.get(ENV_VAR, "").strip()
    try:
        return Replicas.parse(text) if text else None
    except ValueError as exc:  # a setting of the connection: said as a bad Redis setting
        raise BadRedisURL(f"{ENV_VAR}: {exc}") from None


def run_durably(
    client: redis.Redis,
    name: str,
    keys: Sequence[str | bytes],
    args: list[Any],
    policy: Replicas | None,
) -> tuple[Any, bool]:
    """Run script ``name``, waiting for the replicas if there is a ``policy``: (its
    reply, whether it is as durable as asked)."""
    if policy is None:
        return scripts.run(client, name, keys, args), True
    return policy.run(client, name, keys, args)


def run_many(
    client: redis.Redis, calls: Sequence[scripts.ScriptCall], policy: Replicas | None
) -> list[Any]:
    """``scripts.run_many`` with the ``policy``'s WAIT: the replies, then (with a
    policy) the fewest replicas that acknowledged a call. On Redis Cluster the calls are
    in several slots, so on several masters, and a WAIT counts the writes of its own
    connection: each call is made with its WAIT on its master's connection
    (``Replicas.run``), a round trip per call (a call holds up to 1,000 jobs)."""
    if policy is None:
        return scripts.run_many(client, calls)
    if not cluster.is_cluster(client):
        return scripts.run_many(client, calls, (policy.count, policy.timeout_ms))
    replies: list[Any] = []
    durable = True
    for name, keys, args in calls:
        reply, acked = policy.run(client, name, keys, args)
        replies.append(reply)
        durable = durable and acked
    return [*replies, policy.count if durable else 0]
