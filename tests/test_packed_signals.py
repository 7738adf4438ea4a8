"""A producer's held connection (protocol/packed.py ``Held``) when a signal's handler
raises at any instant of a push: in the main thread a job may enqueue while the
worker's signals raise ``Wake``, and an application's handlers may raise too."""

from __future__ import annotations

import time
from typing import Any

import redis

from pyresque.protocol import packed
from pyresque.worker.signals import Wake
from signal_storm import Storm


def _ids(connections: set[Any]) -> set[int]:
    ids = set()
    for connection in connections:
        connection.send_command("CLIENT", "ID")
        ids.add(connection.read_response())
    return ids


def test_an_exception_at_any_instant_of_a_call_leaves_the_held_connection_free(
    redis_client: redis.Redis,
) -> None:
    client = redis_client
    held = packed.Held(client)
    with Storm(packed.Held.run) as storm:
        end = time.monotonic() + 4
        while time.monotonic() < end:
            storm.arm()
            try:
                held.run([("PING",)])
            except Wake:
                pass
    assert storm.raised > 100, "too few signals landed inside a call to test anything"
    # The next call goes on the held connection (kept out of the pool), not on one
    # the pool lends and takes back.
    [answered] = held.run([("CLIENT", "ID")])
    assert answered in _ids(set(client.connection_pool._in_use_connections))
