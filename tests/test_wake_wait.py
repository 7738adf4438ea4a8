"""The idle wait over many wake lists (worker/wake_wait.py), against a real Redis: no
BLPOP over more than GROUP keys, a token on any key ends the wait, a token taken after
the wait ended goes back for another worker, the groups' waits are shared and kept
across waits (never more BLPOPs than groups), and ended when the keys change or on
close. The waits here are long (30 s): each check passes long before they time out."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis

from e2e_support import wait_for
from pyresque.dev.server import RedisServer
from pyresque.worker.signals import Wake
from pyresque.worker.wake_wait import GROUP, START_GRACE, WakeWait

LONG = 30.0


@pytest.fixture
def named(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    """A pooled client whose connections carry a name of their own (CLIENT LIST), and
    wait longer than its waits (redis-py's default socket timeout is 5 s)."""
    name = f"waits-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url, client_name=name, socket_timeout=2 * LONG)
    try:
        yield client, name
    finally:
        client.close()


def _blocked(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    """The BLPOPs that connections named ``name`` are blocked in."""
    return [
        c
        for c in client.client_list()
        if c.get("name") == name and c.get("cmd") == "blpop" and "b" in str(c.get("flags"))
    ]


@pytest.fixture
def woken(
    named: tuple[redis.Redis, str], redis_client: redis.Redis, namespace: str
) -> Iterator[tuple[list[str], WakeWait]]:
    """Waits over three groups of keys that a token on the first woke: the other two
    groups' BLPOPs go on (they serve the next wait)."""
    client, name = named
    keys = _keys(namespace, 2 * GROUP + 1)
    waits = WakeWait(client, f"{namespace}:", False)
    try:
        woke = _woken_by(waits, client, keys, keys[0], redis_client, name, 3)
        assert woke == (keys[0].encode(), b"1")
        assert len(_blocked(redis_client, name)) == 2  # the other groups' BLPOPs go on
        yield keys, waits
    finally:
        waits.close()


def _woken_by(
    waits: WakeWait,
    client: redis.Redis,
    keys: list[str],
    key: str,
    observer: redis.Redis,
    name: str,
    groups: int,
) -> tuple[bytes, ...] | None:
    """A wait over ``keys`` woken by a token on ``key``, pushed once each of the ``groups``
    groups waits in its BLPOP (a group's thread sends it only while a wait is on: a token
    pushed sooner may end the wait before the others have, on a loaded machine)."""
    got: list[Sequence[bytes] | None] = []
    waiter = threading.Thread(target=lambda: got.append(waits.wait(client, keys, LONG)))
    waiter.start()
    try:
        wait_for(lambda: len(_blocked(observer, name)) == groups, 30, "every group to wait")
        observer.rpush(key, "1")
    finally:
        waiter.join(LONG + 5)
    assert got, "the wait did not end"
    return _got(got[0])


def _got(reply: Sequence[bytes] | None) -> tuple[bytes, ...] | None:
    return None if reply is None else tuple(reply)


def _keys(namespace: str, n: int) -> list[str]:
    return [f"{namespace}:pyresque:wake:tenant{i:05d}" for i in range(n)]


def test_no_blpop_holds_more_than_a_group_and_any_key_wakes(
    named: tuple[redis.Redis, str], redis_client: redis.Redis, namespace: str
) -> None:
    client, name = named
    keys = _keys(namespace, 2 * GROUP + 1)  # three groups
    waits = WakeWait(client, f"{namespace}:", False)
    try:
        for key in (keys[-1], keys[0], keys[GROUP + 7]):
            woke = _woken_by(waits, client, keys, key, redis_client, name, 3)
            assert woke == (key.encode(), b"1")
        assert len(_blocked(redis_client, name)) == 2  # the groups not woken go on
        longest = max(len(k) for k in keys)
        for entry in _blocked(redis_client, name):  # argv-mem: its arguments' bytes
            assert int(entry["argv-mem"]) <= (GROUP + 3) * (longest + 8)
    finally:
        waits.close()


def test_a_token_taken_while_no_wait_is_on_goes_back_to_another_worker(
    named: tuple[redis.Redis, str],
    woken: tuple[list[str], WakeWait],
    redis_client: redis.Redis,
    redis_url: str,
) -> None:
    name, (keys, _) = named[1], woken
    other = redis.Redis.from_url(redis_url, socket_timeout=2 * LONG)
    try:
        # The last group's BLPOP, still on, is before the other worker's on the list.
        got: list[Any] = []
        other_wait = threading.Thread(target=lambda: got.append(other.blpop([keys[-1]], LONG)))
        other_wait.start()
        wait_for(
            lambda: any(
                c.get("cmd") == "blpop" and c.get("name") != name
                for c in redis_client.client_list()
            ),
            10,
            "the other worker to wait",
        )
        redis_client.rpush(keys[-1], "1")
        other_wait.join(LONG + 5)
        assert got == [(keys[-1].encode(), b"1")]
    finally:
        other.close()


def test_concurrent_waits_share_the_groups_and_each_token_wakes_one(
    named: tuple[redis.Redis, str], redis_client: redis.Redis, namespace: str
) -> None:
    client, name = named
    keys = _keys(namespace, 2 * GROUP + 1)
    waits = WakeWait(client, f"{namespace}:", False)
    replies: list[Any] = []
    try:
        threads = [
            threading.Thread(target=lambda: replies.append(waits.wait(client, keys, 5.0)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(_blocked(redis_client, name)) == 3, 10, "the groups to wait")
        time.sleep(0.3)  # four waits on: still one BLPOP per group
        assert len(_blocked(redis_client, name)) == 3
        redis_client.rpush(keys[GROUP], "1")
        for thread in threads:
            thread.join(LONG)
        assert sorted(replies, key=lambda r: r is not None) == [
            None,
            None,
            None,
            (keys[GROUP].encode(), b"1"),
        ]
        assert redis_client.llen(keys[GROUP]) == 0  # taken once
    finally:
        waits.close()


def test_new_keys_end_the_groups_they_change_and_wake_at_once(
    named: tuple[redis.Redis, str], woken: tuple[list[str], WakeWait], redis_client: redis.Redis
) -> None:
    (client, name), (keys, waits) = named, woken
    # A new queue in the middle (a glob worker's): the groups from there on change.
    new = keys[0].replace("tenant00000", "tenant00999x")
    more = [*keys[:GROUP], new, *keys[GROUP:]]
    assert _woken_by(waits, client, more, new, redis_client, name, 3) == (new.encode(), b"1")
    # The changed groups' old BLPOPs ended (not left until their 30 s timeout): one
    # BLPOP per group of the new keys but the one that was served.
    wait_for(lambda: len(_blocked(redis_client, name)) == 2, 10, "the old waits to end")


def test_close_ends_the_groups_waits(
    named: tuple[redis.Redis, str], woken: tuple[list[str], WakeWait], redis_client: redis.Redis
) -> None:
    woken[1].close()
    wait_for(lambda: not _blocked(redis_client, named[1]), 10, "the waits to end")


def test_a_signal_while_changed_groups_are_ended_still_ends_the_wait(namespace: str) -> None:
    """In the main thread a signal raises ``Wake`` to end an idle wait (the worker's
    QUIT, TERM, pause): raised while the wait pushes the end markers of the groups whose
    keys changed, it ends the wait, not swallowed as a marker that could not be pushed.
    (Writes are paused, so the push is waiting when the signal comes.)"""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2 * LONG)
        keys = _keys(namespace, 2 * GROUP + 1)
        waits = WakeWait(client, f"{namespace}:", False)
        previous = signal.getsignal(signal.SIGALRM)
        try:
            woke = _woken_by(waits, client, keys, keys[0], client, "", 3)
            assert woke == (keys[0].encode(), b"1")
            assert len(_blocked(client, "")) == 2  # the other groups' BLPOPs go on
            client.client_pause(5000, all=False)  # writes wait

            def wake(*_: Any) -> None:
                raise Wake

            signal.signal(signal.SIGALRM, wake)
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            changed = [*keys[: GROUP + 1], f"{namespace}:pyresque:wake:new", *keys[GROUP + 1 :]]
            with pytest.raises(Wake):
                waits.wait(client, changed, 10.0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            client.client_unpause()
            waits.close()
            client.close()


def test_a_groups_thread_that_fails_is_logged_and_replaced(
    named: tuple[redis.Redis, str],
    redis_client: redis.Redis,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a group's thread is logged by the worker's logger (not only printed to
    stderr), and the group gets a new thread at the next wait: its keys still wake."""
    client, name = named
    keys = _keys(namespace, 2 * GROUP + 1)
    serve, failed = WakeWait._serve, threading.Event()

    def fails_once(self: WakeWait, group: Any) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in a group's thread")
        serve(self, group)

    monkeypatch.setattr(WakeWait, "_serve", fails_once)
    waits = WakeWait(client, f"{namespace}:", False)
    try:
        with caplog.at_level("ERROR", logger="pyresque.worker"):
            assert waits.wait(client, keys, 0.5) is None  # one group's thread failed
            wait_for(lambda: "a bug in a group's thread" in caplog.text, 30, "the failure logged")
        assert "a thread of the idle wait failed" in caplog.text
        time.sleep(START_GRACE)  # (a thread asked for sooner may be starting still)
        waits.wait(client, keys, 0.1)  # the next wait asks for a thread again
        woke = _woken_by(waits, client, keys, keys[-1], redis_client, name, 3)
        assert woke == (keys[-1].encode(), b"1")  # the last group's, whichever failed
    finally:
        waits.close()
