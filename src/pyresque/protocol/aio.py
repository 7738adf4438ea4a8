"""The protocol on ``redis.asyncio``: a client made as ``connect`` makes one, and
the Lua scripts of scripts.py called the same way (EVALSHA, loading a script
only when the server does not know it).

A module of its own so that the synchronous producer and the worker never load
``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from pyresque.exceptions import BadRedisURL
from pyresque.protocol import cluster, scripts, sentinel
from pyresque.protocol.connection import (
    REDIS_DOWN,
    RETRY_BACKOFF,
    SETTINGS,
    check_users_client,
    client_options,
)
from pyresque.protocol.targets import redact, split_tls, tls_from_env, url_from_env, with_tls


def connect(
    target: str | redis.asyncio.Redis | None = None, *, retries: int = 3
) -> redis.asyncio.Redis:
    """An asyncio client for ``target`` (a URL in any form ``connect`` takes, or a
    client, checked as ``connect`` checks one), with the synchronous client's timeouts
    and retries."""
    if isinstance(target, redis.asyncio.Redis):
        check_users_client(target)
        return target
    target = target or url_from_env()
    if sentinel.is_sentinel(target):  # redis+sentinel:// (sentinel.py)
        return _master_of(with_tls(target, tls_from_env()), Retry(RETRY_BACKOFF, retries))
    if cluster.is_cluster(target):  # redis+cluster:// (cluster.py)
        return _cluster(target, Retry(RETRY_BACKOFF, retries))
    url, plain, options = client_options(target)
    try:
        return redis.asyncio.Redis.from_url(plain, retry=Retry(RETRY_BACKOFF, retries), **options)
    except (ValueError, TypeError) as exc:  # a query parameter redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None


def _cluster(url: str, retry: Retry) -> redis.asyncio.Redis:
    """An asyncio ``RedisCluster`` for a Cluster URL, with the synchronous one's
    settings (cluster.connect); it learns the cluster at its first command. Typed as
    ``redis.asyncio.Redis`` as cluster.connect types its client."""
    target = cluster.parse(url)
    _, tls = split_tls(with_tls(url, tls_from_env()))
    login = {"username": target.username, "password": target.password}
    kwargs: dict[str, Any] = {name: value for name, value in login.items() if value}
    if target.tls:
        kwargs.update(ssl=True, **tls)
    nodes = [ClusterNode(host, port) for host, port in target.nodes]
    try:
        client = RedisCluster(
            startup_nodes=nodes, retry=retry, retry_on_error=list(REDIS_DOWN), **SETTINGS, **kwargs
        )
    except (ValueError, TypeError) as exc:  # a setting redis-py cannot use
        raise BadRedisURL(f"the Redis URL {cluster.redact(url)} cannot be used: {exc}") from None
    client.pyresque_target = target  # type: ignore[attr-defined]  # for describe()
    return client  # type: ignore[return-value]  # see above


class _FollowingSentinel(Sentinel):
    """sentinel.FollowingSentinel on asyncio: tells its watch where the master is, so
    a move is logged once and ``describe`` names the master."""

    def __init__(self, target: sentinel.SentinelTarget, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = sentinel.MasterWatch(target)

    async def discover_master(self, service_name: str) -> sentinel.Address:
        try:
            address: sentinel.Address = await super().discover_master(service_name)
        except MasterNotFoundError as exc:
            raise MasterNotFoundError(self.watch.not_found(service_name, str(exc))) from None
        self.watch.saw(service_name, address)
        return address


def _master_of(url: str, retry: Retry) -> redis.asyncio.Redis:
    """An asyncio client to the master of a Sentinel target: each connection asks the
    Sentinels where the master is when it connects, so the client follows a failover."""
    target, master, to_sentinels = sentinel.options(
        url, retry=retry, retry_on_error=list(REDIS_DOWN), **SETTINGS
    )
    tls = target.tls
    master["connection_class"] = SentinelManagedSSLConnection if tls else SentinelManagedConnection
    manager = _FollowingSentinel(target, target.sentinels, sentinel_kwargs=to_sentinels)
    try:
        client: redis.asyncio.Redis = manager.master_for(
            target.service, redis_class=redis.asyncio.Redis, **master
        )
        return client
    except (ValueError, TypeError) as exc:  # a setting redis-py cannot use
        raise BadRedisURL(f"the Redis URL {sentinel.redact(url)} cannot be used: {exc}") from None


async def run(
    client: redis.asyncio.Redis, name: str, keys: Sequence[str | bytes], args: list[Any]
) -> Any:
    """Run script ``name`` (scripts.run, awaited)."""
    script = scripts.script(name)
    try:
        reply = await client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:  # EVAL runs and caches it at once (scripts._call)
        reply = await client.eval(script.script, len(keys), *keys, *args)  # type: ignore[arg-type]
    scripts.logged(name, keys, reply)
    return reply


async def run_and_wait(
    client: redis.asyncio.Redis,
    name: str,
    keys: Sequence[str | bytes],
    args: list[Any],
    wait: tuple[int, int],
) -> tuple[Any, int]:
    """Script ``name`` then ``WAIT`` in one round trip (scripts.run_and_wait, awaited);
    on Redis Cluster on the connection of the call's master (``_in_slot``)."""
    if cluster.is_cluster(client) and keys:
        return await _in_slot(client, (name, keys, args), wait)
    called = scripts.script(name)
    for cached in (True, False):
        async with client.pipeline(transaction=False) as pipe:
            if cached:
                pipe.evalsha(called.sha, len(keys), *keys, *args)
            else:  # the server lost its script cache: EVAL caches it again
                pipe.eval(called.script, len(keys), *keys, *args)  # type: ignore[arg-type]
            pipe.wait(*wait)
            reply, acked = await pipe.execute(raise_on_error=False)
        if not (cached and isinstance(reply, redis.exceptions.NoScriptError)):
            return scripts.waited(name, keys, reply, acked)
    raise AssertionError("unreachable")  # pragma: no cover


#: Replies that say a slot moved, or is moving: the call goes again once the map is new.
_MOVING = (
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
)


async def _in_slot(
    client: redis.asyncio.Redis, call: scripts.ScriptCall, wait: tuple[int, int]
) -> tuple[Any, int]:
    """``run_and_wait`` on Redis Cluster: the script, then ``WAIT``, on one connection
    of the master serving ``keys[0]``'s slot (a WAIT counts the writes of its own
    connection; the cluster client would route a keyless WAIT anywhere). A slot that
    moved, or is moving, refreshes the slot map and tries again (cluster.on_node_of,
    awaited); a node that cannot be reached refreshes it too and is raised."""
    name, keys, args = call
    called = scripts.script(name)
    for attempt in range(cluster.MOVE_ATTEMPTS):
        node = client.get_node_from_key(keys[0])  # type: ignore[attr-defined]
        try:
            reply, acked = await _on_connection(node, ("EVALSHA", called.sha), keys, args, wait)
            if isinstance(reply, redis.exceptions.NoScriptError):  # EVAL caches it again
                command = ("EVAL", called.script)
                reply, acked = await _on_connection(node, command, keys, args, wait)
            if isinstance(reply, _MOVING):
                raise reply
            return scripts.waited(name, keys, reply, acked)
        except _MOVING:
            if attempt + 1 == cluster.MOVE_ATTEMPTS:
                raise
            await _refresh(client)
            await asyncio.sleep(0.01 * attempt)  # an ASK lasts while the slot's keys move
        except REDIS_DOWN:
            await _refresh(client)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _on_connection(
    node: ClusterNode,
    script: tuple[str, Any],
    keys: Sequence[str | bytes],
    args: list[Any],
    wait: tuple[int, int],
) -> list[Any]:
    """The script call and ``WAIT`` sent together on one connection of ``node``: the
    two replies (an error reply as its exception)."""
    connection = node.acquire_connection()
    try:
        commands = [(*script, len(keys), *keys, *args), ("WAIT", *wait)]
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except redis.exceptions.ResponseError as exc:  # read whole: the next follows
                replies.append(exc)
        return replies
    except BaseException:
        await connection.disconnect()  # a reply may be left unread on it
        raise
    finally:
        node.release(connection)


async def _refresh(client: redis.asyncio.Redis) -> None:
    try:
        await client.nodes_manager.initialize()  # type: ignore[attr-defined]
    except redis.exceptions.RedisError:
        pass  # the next call tries again


async def run_many(
    client: redis.asyncio.Redis,
    calls: Sequence[scripts.ScriptCall],
    wait: tuple[int, int] | None = None,
) -> list[Any]:
    """Script calls in one round trip (scripts.run_many, awaited): a call refused with
    NOSCRIPT is run again on its own (with a WAIT of its own under ``wait``); any
    other error is raised. With ``wait``, the replies end with how many replicas
    acknowledged all the calls. On Redis Cluster the calls go one by one, each to its
    slot's master, with a WAIT each there (``run_and_wait``)."""
    if cluster.is_cluster(client):
        if wait is None:
            return [await run(client, *call) for call in calls]
        waited = [await run_and_wait(client, *call, wait) for call in calls]
        return [reply for reply, _ in waited] + [min((n for _, n in waited), default=wait[0])]
    async with client.pipeline(transaction=False) as pipe:
        for name, keys, args in calls:
            script = scripts.script(name)
            pipe.scripts.add(script)  # execute() loads the ones the server lacks
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            scripts.logged(name, keys, "(queued)")
        if wait is not None:
            pipe.wait(*wait)  # on the pipeline's connection: it covers every call before it
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    acked = replies.pop() if wait is not None else 0
    for i, reply in enumerate(replies):
        if isinstance(reply, redis.exceptions.NoScriptError):
            if wait is None:
                replies[i] = await run(client, *calls[i])
            else:
                replies[i], again = await run_and_wait(client, *calls[i], wait)
                acked = min(acked, again)
        elif isinstance(reply, Exception):
            raise reply
    if isinstance(acked, Exception):
        raise acked
    return [*replies, acked] if wait is not None else replies


#: The synchronous connection class of each asyncio one ``sync_twin`` can copy.
_SYNC_CONNECTIONS: dict[str, type[redis.Connection | redis.UnixDomainSocketConnection]] = {
    "Connection": redis.Connection,
    "SSLConnection": redis.SSLConnection,
    "UnixDomainSocketConnection": redis.UnixDomainSocketConnection,
}
#: Connection settings that are asyncio objects: the twin uses its own.
_ASYNC_ONLY = ("retry", "redis_connect_func", "connection_pool")


def sync_twin(client: redis.asyncio.Redis) -> redis.Redis:
    """A synchronous client to the server ``client`` talks to, with its settings, for
    the admin calls ``AsyncResque`` runs in a thread. ``ValueError`` for a client
    whose connections cannot be copied (one that Sentinel manages)."""
    pool = client.connection_pool
    connection = _SYNC_CONNECTIONS.get(pool.connection_class.__name__)
    if connection is None:
        raise ValueError(
            f"{pool.connection_class.__name__} connections cannot be copied to a "
            "synchronous client: use Resque for this call"
        )
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _ASYNC_ONLY}
    sync_pool = redis.ConnectionPool(connection_class=connection, **kwargs)
    return redis.Redis(connection_pool=sync_pool)
