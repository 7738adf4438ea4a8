"""Redis Cluster: the ``redis+cluster://`` target and its client.

A Cluster target names some of the cluster's nodes (the client learns the rest)::

    redis+cluster://[user:password@]host1:7000,host2:7001[/][?options]

``rediss+cluster://`` speaks TLS to every node, with the TLS settings of a
``rediss://`` URL as options (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_cert_reqs``, ``ssl_check_hostname``) or the ``PYRESQUE_SSL_*`` variables. A
cluster has database 0 only. The client is redis-py's ``RedisCluster``: it routes
each command by its keys' slot and follows ``MOVED`` and ``ASK`` replies (a slot
migration, a failover) by itself. How pyresque lays its keys over the slots is
keys.py (``Keys.clustered``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import redis
from redis.cluster import ClusterNode, RedisCluster

from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.protocol.sentinel import redact, split_hosts_url
from pyresque.protocol.targets import URL_SETTING

SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
_FORM = "write redis+cluster://[user:password@]host1:7000,host2:7001/"
_TLS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")

Address = tuple[str, int]
_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
#: Tries of a call routed by hand (on_node_of) while its slot moves.
MOVE_ATTEMPTS = 20
T = TypeVar("T")

__all__ = ["SCHEMES", "ClusterTarget", "connect", "describe", "is_cluster", "parse", "redact"]


def is_cluster(target: object) -> bool:
    """Whether ``target`` is a Cluster URL or a Cluster client."""
    if isinstance(target, str):
        return target.strip().lower().startswith(tuple(s + "://" for s in SCHEMES))
    # By name: the asyncio RedisCluster (and the pipelines) without importing redis.asyncio.
    return isinstance(target, RedisCluster) or type(target).__name__ in (
        "ClusterPipeline",
        "RedisCluster",
    )


@dataclass(frozen=True)
class ClusterTarget:
    """A parsed Cluster URL."""

    nodes: list[Address]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        """The target as a URL without credentials."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.nodes)
        return f"{SCHEMES[self.tls]}://{hosts}/"


def parse(url: str) -> ClusterTarget:
    """A Cluster URL's parts; ``BadRedisURL`` saying what is wrong (no password shown)."""
    shown = redact(url.strip())

    def bad(problem: str) -> BadRedisURL:
        return BadRedisURL(f"the Redis URL {shown} {problem}; {_FORM}")

    scheme, username, password, nodes, path, query = split_hosts_url(
        url, SCHEMES, DEFAULT_PORT, "node", bad
    )
    if path.strip("/") not in ("", "0"):
        raise bad(f"has database {path.strip('/')!r}; a cluster has database 0 only")
    options = dict(parse_qsl(query))
    unknown = sorted(set(options) - set(_TLS))
    if unknown:
        raise bad(f"has unknown option(s) {', '.join(unknown)}; known: {', '.join(_TLS)}")
    tls = scheme.lower() == SCHEMES[1]
    if options and not tls:
        raise bad(f"has TLS settings ({', '.join(options)}) but is not rediss+cluster://")
    return ClusterTarget(nodes, username, password, tls, options)


def connect(url: str, tls: dict[str, Any], **settings: Any) -> redis.Redis:
    """A client to the cluster of ``url``. ``tls`` are the checked TLS keyword arguments
    (targets.split_tls) and ``settings`` pyresque's timeouts and retries.

    Typed as ``redis.Redis``: ``RedisCluster`` offers the same commands, scripts and
    pipelines that pyresque calls, routed by slot."""
    target = parse(url)
    login = {"username": target.username, "password": target.password}
    kwargs: dict[str, Any] = {name: value for name, value in login.items() if value}
    if target.tls:
        kwargs.update(ssl=True, **tls)
    try:
        client = _client(target.nodes, {**kwargs, **settings})
    except (ValueError, TypeError) as exc:  # a setting redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None
    except (redis.exceptions.RedisClusterException, *_DOWN) as exc:  # no node answered
        raise RedisUnavailable(
            f"cannot reach Redis at {target.shown()} ({exc}); check that the cluster is "
            f"running and that {URL_SETTING} names some of its nodes"
        ) from None
    client.pyresque_target = target  # type: ignore[attr-defined]  # for describe()
    return client  # type: ignore[return-value]  # see above


def _client(nodes: list[Address], kwargs: dict[str, Any]) -> RedisCluster:
    """A ``RedisCluster`` that starts from ``nodes`` (it learns the rest)."""
    startup = [ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=startup, **kwargs)


def on_node_of(client: Any, key: str | bytes, call: Callable[[redis.Redis], T]) -> T:
    """``call`` with a plain client to the master serving ``key``'s slot, so that
    several commands share one connection: ``WAIT`` counts the writes of its own
    connection (durability.py). A ``MOVED`` or ``ASK`` (the slot moved, or is
    moving) refreshes the slot map and tries again; a node that cannot be reached
    refreshes it too (a replica may have taken over) and is raised to the caller."""
    for attempt in range(MOVE_ATTEMPTS):
        node = client.get_node_from_key(key)
        try:
            return call(node.redis_connection)
        except (redis.exceptions.AskError, redis.exceptions.TryAgainError):
            if attempt + 1 == MOVE_ATTEMPTS:
                raise
            _refresh(client)
            time.sleep(0.01 * attempt)  # an ASK lasts while the slot's keys move
        except _DOWN:
            _refresh(client)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _refresh(client: Any) -> None:
    try:
        client.nodes_manager.initialize()
    except redis.exceptions.RedisError:
        pass  # the next call tries again


def describe(client: Any) -> str | None:
    """Where a Cluster client points, without credentials; None if it is not one."""
    target = getattr(client, "pyresque_target", None)
    if isinstance(target, ClusterTarget):
        return target.shown()
    if isinstance(client, RedisCluster):
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        hosts = ",".join(f"{n.host}:{n.port}" for n in primaries)
        return f"redis+cluster://{hosts}/"
    return None


def sibling(client: Any, **overrides: Any) -> redis.Redis | None:
    """A client of its own to ``client``'s cluster with connection settings
    ``overrides`` (the worker's lease client); None if ``client`` is not a Cluster one."""
    if not isinstance(client, RedisCluster):
        return None
    given = client.get_connection_kwargs()  # type: ignore[no-untyped-call]
    kwargs = {
        k: v
        for k, v in given.items()
        if k not in ("host", "port") and not k.startswith(("orig_", "maint_"))
    }
    kwargs.update(overrides)
    nodes = client.get_nodes()  # type: ignore[no-untyped-call]
    own = _client([(n.host, n.port) for n in nodes], kwargs)
    own.pyresque_target = getattr(client, "pyresque_target", None)  # type: ignore[attr-defined]
    return own  # type: ignore[return-value]
