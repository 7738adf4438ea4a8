"""Connecting to Redis: the one function every part uses (``connect``), retries, clear
errors, and the clients the worker derives for its own calls. What a target may say
(URL forms, TLS settings, the environment) is targets.py.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.protocol import cluster, sentinel
from pyresque.protocol.targets import (
    URL_SETTING,
    check_url,
    redact,
    split_tls,
    tls_from_env,
    url_from_env,
    with_tls,
)

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger("pyresque")

# redis-py 8.2 added it for a cluster no node of which answers; we accept redis-py >= 5.0.
_UNREACHABLE: tuple[type[Exception], ...] = tuple(
    getattr(redis.exceptions, name)
    for name in ("RedisClusterUnreachableError",)
    if hasattr(redis.exceptions, name)
)
#: What a call raises when Redis cannot be reached (down, cut off, or not answering).
#: On Cluster also: no node reachable, a slot served by nobody yet, the cluster down
#: while a replica takes over, a multi-key call during a slot's move (try again).
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    *_UNREACHABLE,
)

#: Longest single blocking wait (BLPOP) a worker makes: kept well under the socket timeout.
MAX_BLOCK = 5.0

#: The connection settings pyresque gives the clients it makes, and what a worker
#: relies on each for (a client given by the user is checked for them).
SETTINGS: dict[str, Any] = {
    # A connection the network dropped is noticed within seconds, not at the next TCP timeout.
    "socket_connect_timeout": 5,
    # A command that hangs (a cut connection) fails instead of blocking forever;
    # blocking waits (BLPOP) are kept shorter than this (fetch.py).
    "socket_timeout": 15,
    "socket_keepalive": True,
    # An idle pooled connection is checked before use (a NAT or proxy may have cut it).
    "health_check_interval": 30,
}


def connect(target: str | redis.Redis | None = None, *, retries: int = 3) -> redis.Redis:
    """A client for ``target``: a URL (targets.py says which forms), None for the
    environment's (``REDIS_URL``, ``REDIS_BACKEND``), or a client of the user's, which is
    used as it is (with one warning line naming the settings it lacks; one that decodes
    replies is refused). Connection errors are retried briefly. Every component
    connects through here."""
    if isinstance(target, redis.Redis):
        check_users_client(target)
        return target
    if cluster.is_cluster(target) and not isinstance(target, str):  # the user's RedisCluster
        return target  # type: ignore[return-value]  # see cluster.connect
    target = target or url_from_env()
    if sentinel.is_sentinel(target):  # redis+sentinel:// (sentinel.py)
        target = with_tls(target, tls_from_env())
        retry = Retry(RETRY_BACKOFF, retries)
        return sentinel.connect(target, retry=retry, retry_on_error=list(REDIS_DOWN), **SETTINGS)
    if cluster.is_cluster(target):  # redis+cluster:// (cluster.py)
        cluster.parse(target)  # its own errors first
        url, tls = split_tls(with_tls(target, tls_from_env()))
        retry = Retry(RETRY_BACKOFF, retries)
        return cluster.connect(url, tls, retry=retry, retry_on_error=list(REDIS_DOWN), **SETTINGS)
    url, plain, options = client_options(target)
    try:
        return redis.Redis.from_url(plain, retry=Retry(RETRY_BACKOFF, retries), **options)
    except (ValueError, TypeError) as exc:  # a query parameter redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None


#: The backoff between a call's retries on a connection error.
RETRY_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=1.0)


def client_options(target: str | None) -> tuple[str, str, dict[str, Any]]:
    """For a URL (or None: the environment's): the full URL, the URL without its TLS
    settings, and the client's keyword arguments but ``retry`` (``Retry(RETRY_BACKOFF,
    n)``, whose class is the client's own). What ``connect`` and the asyncio
    client (aio.py) share."""
    url = with_tls(check_url(target or url_from_env()), tls_from_env())
    plain, tls = split_tls(url)
    retry_on = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    settings = dict(SETTINGS)
    if plain.lower().startswith("unix:"):  # a TCP option: redis-py's Unix connection refuses it
        del settings["socket_keepalive"]
    return url, plain, {"retry_on_error": retry_on, **settings, **tls}


def check_users_client(client: redis.Redis | redis.asyncio.Redis) -> None:
    """What ``connect`` and the asyncio client (aio.py) do with a client of the user's:
    refuse one that decodes replies, and log one line if it lacks what pyresque relies
    on: a socket timeout longer than the workers' blocking waits (else a cut connection
    hangs a worker, or every wait fails), a connect timeout, and retries on connection
    errors."""
    pool = client.connection_pool
    if pool.connection_kwargs.get("decode_responses"):
        raise ValueError(
            "pyresque needs a redis client that returns bytes: create it without "
            "decode_responses=True (what Redis holds may be any bytes, and payloads are "
            "kept exactly as written)"
        )
    # An unconnected connection shows the settings in effect, whatever redis-py's defaults.
    conn = pool.connection_class(**pool.connection_kwargs)
    wanted = SETTINGS["socket_timeout"]
    lacks = []
    if not conn.socket_timeout or conn.socket_timeout <= MAX_BLOCK:
        lacks.append(f"socket_timeout={wanted} (more than the {MAX_BLOCK:g} s blocking waits)")
    if not conn.socket_connect_timeout:
        lacks.append(f"socket_connect_timeout={SETTINGS['socket_connect_timeout']}")
    retry = getattr(conn, "retry", None)
    if retry is None or not retry.get_retries():
        lacks.append("retry=Retry(ExponentialWithJitterBackoff(), 3)")
    if lacks:
        log.warning(
            "the redis client given to pyresque lacks %s: a cut connection can hang a "
            "worker or fail its calls; create the client with these settings",
            ", ".join(lacks),
        )


def wrong_type(exc: redis.exceptions.ResponseError) -> bool:
    """Whether Redis refused a command because the key holds another type (anyone
    may have written it)."""
    return str(exc).startswith("WRONGTYPE")


def replies(pipe: redis.client.Pipeline) -> list[Any]:
    """Execute ``pipe``; a command refused because its key holds another type answers
    None instead of failing the lot (any other error is raised)."""
    found = pipe.execute(raise_on_error=False)
    for i, reply in enumerate(found):
        if isinstance(reply, redis.exceptions.ResponseError) and wrong_type(reply):
            found[i] = None
        elif isinstance(reply, Exception):
            raise reply
    return found


def text(value: bytes | str) -> str:
    """A reply as text (our clients return bytes, so bad UTF-8 in a payload survives)."""
    return value.decode() if isinstance(value, bytes) else value


def raw(value: bytes | str) -> bytes:
    """A reply as bytes."""
    return value if isinstance(value, bytes) else value.encode()


def describe(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where a client points, as a URL without credentials: ``redis://127.0.0.1:6379/0``."""
    if (on_cluster := cluster.describe(client)) is not None:
        return on_cluster
    if (on_sentinel := sentinel.describe(client)) is not None:
        return on_sentinel
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    # By name: the asyncio client's TLS connection class is another one.
    scheme = "rediss" if "SSL" in pool.connection_class.__name__ else "redis"
    return f"{scheme}://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{db}"


def ping(client: redis.Redis) -> None:
    """Reach the server once: ``RedisUnavailable`` when it cannot be reached,
    ``BadRedisURL`` when it refuses the connection's settings (a database index
    beyond the server's ``databases``, a bad password)."""
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:  # a ConnectionError to redis-py
        raise BadRedisURL(
            f"Redis at {describe(client)} refused the credentials ({exc}); check the user "
            f"name and password in {URL_SETTING}"
        ) from None
    except REDIS_DOWN as exc:
        raise unavailable(client, exc) from exc
    except redis.exceptions.ResponseError as exc:
        raise BadRedisURL(
            f"Redis at {describe(client)} refused the connection ({exc}); check the "
            f"database index and the credentials in {URL_SETTING}"
        ) from None


def unavailable(client: redis.Redis | redis.asyncio.Redis, exc: BaseException) -> RedisUnavailable:
    where = describe(client)
    if _tls_failure(exc):
        return RedisUnavailable(
            f"the TLS handshake with Redis at {where} failed ({exc}); check the CA file "
            "(ssl_ca_certs in the URL, PYRESQUE_SSL_CA_CERTS or --ssl-ca-certs), the client "
            "certificate and key, and that the server speaks TLS on that port"
        )
    return RedisUnavailable(
        f"cannot reach Redis at {where} ({exc}); check that the server is running "
        f"and that {URL_SETTING} points at it"
    )


def _tls_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the TLS layer's: a refused certificate,
    a server that hung up mid-handshake (TLS 1.3 refuses a client's certificate after
    the client thinks it is done). redis-py keeps only the message of some."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError) or "_ssl.c" in str(exc):  # OpenSSL's own words
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def dedicated(client: redis.Redis) -> redis.Redis:
    """A client that keeps one connection of ``client``'s pool for itself. A worker's
    processor makes every call on its own connection anyway (a blocking wait holds
    one), and skipping the pool's per-call checkout and its check for stray data
    saves ~8 us a call. ``close()`` gives the connection back. A Cluster client has a
    connection per node: the processor gets a client of its own."""
    if (own := cluster.sibling(client)) is not None:
        return own
    return redis.Redis(connection_pool=client.connection_pool, single_connection_client=True)


#: Attempts of each call on the lease path (the first and one retry).
LEASE_CALL_ATTEMPTS = 2


def lease_client(client: redis.Redis, lease_ttl: float) -> redis.Redis:
    """A client to ``client``'s server for the lease path (the heartbeat, the recovery
    and history flush it runs, the RUNNING marker): its own pool, and timeouts derived
    from the lease so that every call, its retry included, ends in about half of it.
    Each attempt may spend ``lease_ttl / 8`` connecting and as much waiting for the
    reply: 2 attempts x 2 x lease/8 = lease/2 (0.625 s per wait for the 5 s default).
    A call stuck on a dead connection is so abandoned in time to renew the lease."""
    wait = max(lease_ttl / (4 * LEASE_CALL_ATTEMPTS), 0.05)
    bounds: dict[str, Any] = {
        "socket_timeout": wait,
        "socket_connect_timeout": wait,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), LEASE_CALL_ATTEMPTS - 1),
        "retry_on_error": list(REDIS_DOWN),
    }
    if (on_cluster := cluster.sibling(client, **bounds)) is not None:
        return on_cluster
    if (on_sentinel := sentinel.sibling(client, **bounds)) is not None:
        return on_sentinel
    pool = client.connection_pool
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if not k.startswith(("orig_", "maint_"))  # derived ones, the pool adds its own
    }
    kwargs.update(bounds)
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


@contextmanager
def reaching(client: redis.Redis) -> Iterator[None]:
    """Report Redis being unreachable as ``RedisUnavailable``, naming the server."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise unavailable(client, exc) from exc
