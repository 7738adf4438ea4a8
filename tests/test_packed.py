"""Commands sent packed on one connection (protocol/packed.py): what a plain enqueue
and a worker's plain finish send. The bytes are redis-py's, the replies are all read
before an error is raised, a connection cut mid-call is retried as the client's own
calls are, and the connection goes back to the pool whatever happened.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyresque import Events, Job, Resque
from pyresque.protocol import packed


class Packed(Job):
    def perform(self) -> None:
        pass


def client_of(url: str, retries: int) -> redis.Redis:
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), retries), socket_timeout=15)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = client_of(redis_url, 1)
    yield r
    r.close()


def idle(client: redis.Redis) -> list[object]:
    """The pool's idle connections, after checking that none is still in use."""
    pool = client.connection_pool
    assert not pool._in_use_connections
    return list(pool._available_connections)


ARG = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"])),
    st.binary(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(ARG, min_size=1, max_size=6), min_size=1, max_size=5),
    st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_commands_are_packed_as_redis_py_packs_them(
    commands: list[list[object]], constant: list[bool]
) -> None:
    """Commands packed on the way, or once (``Constant``): the same bytes either way."""
    connection: Any = redis.Connection()  # type: ignore[no-untyped-call]  # (not connected)
    tuples = [("SET", *command) for command in commands]
    once = constant[: len(tuples)]
    mixed = [packed.Constant(*t) if o else t for t, o in zip(tuples, once, strict=True)]
    assert packed.pack(mixed) == b"".join(connection.pack_commands(tuples))
    assert b"".join(connection.pack_commands(mixed)) == packed.pack(tuples)


def test_an_argument_of_another_type_is_refused_before_anything_is_sent() -> None:
    for bad in (1.5, True, None):
        with pytest.raises(TypeError, match="str, bytes or int"):
            packed.pack([("SET", "k", bad)])


def test_an_error_reply_mid_call_leaves_no_reply_unread(
    client: redis.Redis, namespace: str
) -> None:
    k1, k2 = f"{namespace}:a", f"{namespace}:b"
    connection: Any = client.connection_pool.get_connection()
    try:
        replies = packed.exchange(
            connection, [("SET", k1, "a"), ("LPUSH", k1, "x"), ("SET", k2, "b")]
        )
        assert replies[0] == replies[2] == b"OK"
        assert isinstance(replies[1], redis.ResponseError)
        assert "WRONGTYPE" in str(replies[1])
        # The same connection answers the next command with its own reply.
        connection.send_command("GET", k1)
        assert connection.read_response() == b"a"
    finally:
        client.connection_pool.release(connection)


def test_run_raises_an_error_reply_once_every_command_ran(
    client: redis.Redis, namespace: str
) -> None:
    k1, k2 = f"{namespace}:a", f"{namespace}:b"
    client.ping()
    [connection] = idle(client)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        packed.run(client, [("SET", k1, "a"), ("LPUSH", k1, "x"), ("SET", k2, "b")])
    assert client.get(k2) == b"b"
    assert idle(client) == [connection]  # back in the pool, and the only one used


def test_a_connection_cut_mid_call_is_sent_again_as_redis_py_retries(
    client: redis.Redis, namespace: str
) -> None:
    first, last = f"{namespace}:first", f"{namespace}:last"
    own = client.client_id()  # the pool's one connection, which run() takes next
    # The server runs the first INCR, then closes this connection (its own CLIENT KILL),
    # before the last INCR: the call is cut in the middle. The retry sends it all again
    # on a new connection, where the old id kills no one.
    kill = ("CLIENT", "KILL", "ID", own, "SKIPME", "no")
    assert packed.run(client, [("INCR", first), kill, ("INCR", last)]) == [2, 0, 1]
    assert (client.get(first), client.get(last)) == (b"2", b"1")
    assert len(idle(client)) == 1
    assert client.ping()


def test_a_connection_cut_with_no_retry_left_raises_and_the_pool_keeps_a_good_connection(
    redis_url: str, namespace: str
) -> None:
    client = client_of(redis_url, 0)
    try:
        own = client.client_id()
        kill = ("CLIENT", "KILL", "ID", own, "SKIPME", "no")
        with pytest.raises(redis.ConnectionError):
            packed.run(client, [kill, ("INCR", f"{namespace}:n")])
        [connection] = idle(client)  # given back, dropped: it reconnects when used
        assert connection._sock is None  # type: ignore[attr-defined]
        assert client.incr(f"{namespace}:n") == 1  # the INCR never ran
    finally:
        client.close()


def test_a_single_connection_client_enqueues_on_its_own_connection(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url, single_connection_client=True)
    rq = Resque(client, namespace=namespace, events=Events())
    try:
        rq.enqueue("q", Packed, {"n": 1})
        rq.enqueue("q", Packed, {"n": 2})
        assert rq.size("q") == 2
        assert rq.queues() == ["q"]
        assert client.connection_pool._created_connections == 1  # its one connection
    finally:
        client.close()


def test_a_client_with_another_encoding_names_keys_as_it_encodes_them(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url, encoding="latin-1")
    rq = Resque(client, namespace=namespace, events=Events())
    try:
        rq.enqueue("café", Packed, {})
        assert client.exists(f"{namespace}:queue:café".encode("latin-1"))
        assert rq.size("café") == 1
    finally:
        client.close()


# --- a producer's held connection (packed.Held) ---------------------------------------


Made = Callable[..., tuple[Resque, redis.Redis]]


@pytest.fixture
def producer(redis_url: str, namespace: str) -> Iterator[Made]:
    """Makes a producer on a client of the test's own (its options), closed after."""
    clients: list[redis.Redis] = []

    def make(**options: Any) -> tuple[Resque, redis.Redis]:
        clients.append(redis.Redis.from_url(redis_url, socket_timeout=15, **options))
        return Resque(clients[-1], namespace=namespace, events=Events()), clients[-1]

    yield make
    for client in clients:
        client.close()


def in_use(client: redis.Redis) -> set[Any]:
    return set(client.connection_pool._in_use_connections)


def test_a_producer_keeps_one_connection_for_its_plain_pushes(producer: Made) -> None:
    rq, client = producer()
    rq.enqueue("q", Packed, {"n": 1})
    held = in_use(client)
    assert len(held) == 1  # kept out of the pool between pushes, not given back
    rq.enqueue("q", Packed, {"n": 2})
    assert in_use(client) == held  # the same one
    assert rq.size("q") == 2  # other calls take another from the pool
    del rq
    gc.collect()
    assert not in_use(client)  # given back as the producer goes
    assert set(client.connection_pool._available_connections) >= held


def test_a_held_connection_the_server_closed_is_replaced_and_the_job_pushed_once(
    producer: Made,
) -> None:
    rq, client = producer()
    rq.enqueue("q", Packed, {"n": 1})
    [held] = in_use(client)
    held.send_command("CLIENT", "ID")
    held_id = held.read_response()
    assert client.client_kill_filter(_id=held_id) == 1
    rq.enqueue("q", Packed, {"n": 2})
    assert rq.size("q") == 2
    assert [job["args"] for job in rq.peek("q", 0, 2)] == [[{"n": 1}], [{"n": 2}]]


def test_a_forked_child_pushes_on_a_connection_of_its_own(producer: Made) -> None:
    rq, client = producer()
    rq.enqueue("q", Packed, {"n": 1})
    [held] = in_use(client)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            rq.enqueue("q", Packed, {"n": 2})
            code = 0 if held not in in_use(client) else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    rq.enqueue("q", Packed, {"n": 3})  # the parent's connection still answers its own
    assert in_use(client) == {held}
    assert sorted(job["args"][0]["n"] for job in rq.peek("q", 0, 3)) == [1, 2, 3]


def test_threads_pushing_at_once_lose_no_job(producer: Made) -> None:
    rq, _ = producer()

    def push(base: int) -> None:
        for n in range(base, base + 100):
            rq.enqueue("q", Packed, {"n": n})

    threads = [threading.Thread(target=push, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ns = sorted(job["args"][0]["n"] for job in rq.peek("q", 0, 400))
    assert ns == list(range(400))


def test_a_pool_bounded_by_its_user_keeps_no_connection(producer: Made) -> None:
    rq, client = producer(max_connections=2)
    rq.enqueue("q", Packed, {})
    assert not in_use(client)
    assert rq.size("q") == 1
