"""A few fixed commands sent in one write on one connection, and their replies read.

What a plain enqueue (push.py) and a worker's plain finish (worker/landing.py) send:
no script, a handful of known commands. redis-py's ``Pipeline`` object would cost a
producer ~35 us of client CPU per enqueue more than one command (its command stack,
its per-command callbacks, packing through its encoder: docs/scaling.md, issue 12);
this packs the commands at once and reads one reply each, on a connection taken
from the client's pool as redis-py's own calls take it.

The rules redis-py keeps are kept: every reply is read before an error reply is
raised (the next user of the connection must not read this call's replies); a
connection that fails mid-call is dropped, never handed on; a connection error is
retried as the client's ``Retry`` says (the whole call sent again, as redis-py's
pipeline does); the connection goes back to the pool in every case.
"""

from __future__ import annotations

import codecs
import os
import select
import weakref
from collections.abc import Sequence
from functools import cache
from typing import Any, cast

import redis

#: One command: its name and arguments (str, bytes or int).
Command = tuple[Any, ...]


class Constant(tuple[Any, ...]):
    """A command sent again and again (the same name and arguments), packed once: a
    plain enqueue's ``SADD`` and wake-up token (push.py) are packed on every job's way
    to its worker, run cold (docs/scaling.md, "Cold code")."""

    packed: bytes

    def __new__(cls, *command: Any) -> Constant:
        made = super().__new__(cls, command)
        made.packed = pack([command])
        return made


def pack(commands: Sequence[Command]) -> bytes:
    """``commands`` in the Redis protocol: str as UTF-8, bytes as they are, int in
    decimal. (redis-py's packer takes ~3.5 us a command for the same bytes.)"""
    out = []
    for command in commands:
        if type(command) is Constant:
            out.append(command.packed)
            continue
        out.append(b"*%d\r\n" % len(command))
        for value in command:
            if isinstance(value, str):
                data = value.encode()
            elif isinstance(value, bytes):
                data = value
            elif isinstance(value, int) and not isinstance(value, bool):
                data = b"%d" % value
            else:
                raise TypeError(f"a command argument must be str, bytes or int, not {value!r}")
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@cache
def _utf8(encoding: str, errors: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8" and errors == "strict"


def _packed(connection: Any, commands: Sequence[Command]) -> Any:
    """What to send: ``pack``'s bytes, unless the connection encodes text otherwise
    (a client of the user's made with another ``encoding``): then redis-py's."""
    encoder = getattr(connection, "encoder", None)
    if encoder is not None and _utf8(encoder.encoding, encoder.encoding_errors):
        return [pack(commands)]
    return connection.pack_commands(commands)


def exchange(connection: Any, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and read their replies (an error reply as its
    exception, not raised). A connection that fails is dropped: the next call must
    not read this one's replies."""
    try:
        connection.send_packed_command(_packed(connection, commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        connection.disconnect()
        raise


def run(client: redis.Redis, commands: Sequence[Command], raised: bool = True) -> list[Any]:
    """``commands`` in one round trip on a connection of ``client``'s pool (a
    single-connection client's own, under its lock); their replies, or the first
    error reply raised once all were read (not ``raised``: error replies in their
    places). See the module."""
    own: Any = client.connection
    if own is not None:
        with client.single_connection_lock:
            replies = _retried(own, commands)
    else:
        pool = client.connection_pool
        connection: Any = pool.get_connection()
        try:
            replies = _retried(connection, commands)
        finally:
            pool.release(connection)
    return _raised(replies) if raised else replies


#: The smallest pool (``max_connections``) a producer keeps a connection of: redis-py's
#: default size.
HOLDS_FROM = 100

#: Bumped in a forked child: a connection held before the fork is the parent's.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Held:
    """``run`` on a connection of ``client``'s pool kept between calls, not checked out
    and back each time: the pool's checkout and return (a ``getpid``, its lock, its
    metrics calls, a ``poll`` for stray data) cost a producer 18 µs on a quiet machine,
    60 and more on a busy one, on every job's way to Redis, run cold between jobs
    (docs/scaling.md, "Pickup latency"). Before each call it is checked as the pool
    checks a connection it lends (one the server closed, or with data waiting, is
    connected again: ``_stale``), and pinged after ``health_check_interval`` idle as
    any; it goes back to the pool when this object goes.

    Calls made while another thread's call holds it take one from the pool, as do a
    single-connection client's; a pool of another class, or bound tighter than
    ``HOLDS_FROM`` connections (holding one could leave another caller none), lends one
    per call. In a forked child the parent's connection is left alone."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        pool: Any = getattr(client, "connection_pool", None)  # (a RedisCluster has none)
        self._holds = type(pool) is redis.ConnectionPool and pool.max_connections >= HOLDS_FROM
        # The calls on now, each its own object: the first holds the connection. Not a
        # lock: a signal's handler may raise as ``acquire`` returns, before ``try``
        # (the lock held for good); one added in ``try`` is taken out whatever lands.
        self._calls: list[object] = []
        self._slot: list[Any] = [None, _forks]  # the connection, and when it was taken
        self._poller = select.poll()  # polls the socket ``_polled`` (``_stale``)
        self._polled: Any = None
        if self._holds:
            weakref.finalize(self, _give_back, pool, self._slot).atexit = False

    @property
    def client(self) -> redis.Redis:
        """The client whose pool lends the connection (for a call of another kind)."""
        return self._client

    def run(self, commands: Sequence[Command], raised: bool = True) -> list[Any]:
        """``run(client, commands, raised)``, on the held connection when it is free."""
        client = self._client
        if not self._holds or client.connection is not None:
            return run(client, commands, raised)
        me = object()
        try:
            self._calls.append(me)
            if self._calls[0] is not me:  # another call holds it
                self._calls.remove(me)  # now: left first in the list, it would bar the next
                return run(client, commands, raised)
            slot = self._slot
            if slot[0] is None or slot[1] != _forks:
                slot[0], slot[1] = client.connection_pool.get_connection(), _forks
            elif self._stale(slot[0]):  # closed by the server, or data none asked for
                slot[0].disconnect()  # (it connects again as it sends)
            replies = _retried(slot[0], commands)
        finally:
            if me in self._calls:  # (no check for signals until it is out)
                self._calls.remove(me)
        return _raised(replies) if raised else replies

    def _stale(self, connection: Any) -> bool:
        """Whether the connection's socket is readable with no call made: the server
        closed it, or sent what no one asked for. The pool checks the same before it
        lends one (``can_read``: 40 µs run cold, against ~10 for a poll kept per socket)."""
        sock = connection._sock
        if sock is None:
            return False  # not connected: it connects as it sends
        if sock is not self._polled:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            self._polled = sock
        return bool(self._poller.poll(0))


def _give_back(pool: redis.ConnectionPool, slot: list[Any]) -> None:
    if slot[0] is not None and slot[1] == _forks:
        pool.release(slot[0])
    slot[0] = None


def _retried(connection: Any, commands: Sequence[Command]) -> list[Any]:
    """``exchange``, sent again after a connection error as the connection's ``Retry``
    says (as redis-py's calls do: the connection dropped, and a backoff)."""

    def drop(_: Exception) -> None:
        connection.disconnect()

    return cast(
        "list[Any]", connection.retry.call_with_retry(lambda: exchange(connection, commands), drop)
    )


def _raised(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, redis.exceptions.ResponseError):
            raise reply
    return replies
