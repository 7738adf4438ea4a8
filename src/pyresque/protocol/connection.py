"""Connecting to Redis: URLs, php-resque's ``REDIS_BACKEND`` forms, retries, clear errors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from pyresque.exceptions import BadRedisURL, RedisUnavailable

DEFAULT_URL = "redis://127.0.0.1:6379/0"


#: What a call raises when Redis cannot be reached (down, cut off, or not answering).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


_URL_FORMS = "write redis://host:port/db, rediss://host:port/db, unix:///path?db=N or host:port"


def backend_url(backend: str, db: str | int | None = None) -> str:
    """Turn php-resque's ``REDIS_BACKEND`` (and ``REDIS_BACKEND_DB``) into a redis URL.

    Accepts ``host``, ``host:port``, ``redis://…``, ``rediss://…``, ``tcp://host:port``
    and ``unix:///path``. A database in the URL's path wins over ``db``.
    """
    backend = backend.strip()
    if backend.startswith("tcp://"):
        backend = "redis://" + backend[len("tcp://") :]
    if backend.startswith("unix://"):
        url = backend
        return f"{url}{'&' if '?' in url else '?'}db={db}" if db not in (None, "") else url
    if "://" not in backend:
        host, _, port = backend.partition(":")
        backend = f"redis://{host or '127.0.0.1'}:{port or 6379}"
    scheme, _, rest = backend.partition("://")
    rest, mark, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority}/{path or (db if db not in (None, '') else 0)}{mark}{query}"


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)


def check_url(target: str) -> str:
    """``target`` in any form ``REDIS_URL`` or ``REDIS_BACKEND`` takes (``host:port``
    too) as a redis URL with a host, a port in 1..65535 and a whole database index;
    else ``BadRedisURL`` saying what is wrong. (Whether the database exists is only
    known by asking the server: ``ping``.)"""
    url = backend_url(target)
    shown = redact(target.strip())
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6] address
        raise BadRedisURL(f"the Redis URL {shown} cannot be parsed ({exc}); {_URL_FORMS}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise BadRedisURL(f"the Redis URL {shown} has scheme {parts.scheme!r}; {_URL_FORMS}")
    dbs = parse_qs(parts.query).get("db", [])
    if parts.scheme == "unix":
        if not parts.path:
            raise BadRedisURL(f"the Redis URL {shown} names no socket path; {_URL_FORMS}")
    else:
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            port_text = parts.netloc.rpartition(":")[2]
            raise BadRedisURL(
                f"the Redis URL {shown} has port {port_text!r}; a port is a number "
                f"from 1 to 65535: {_URL_FORMS}"
            )
        if not parts.hostname:
            raise BadRedisURL(f"the Redis URL {shown} names no host; {_URL_FORMS}")
        dbs.append(parts.path.strip("/"))
    for db in dbs:
        if not db.isdigit() or not db.isascii():
            raise BadRedisURL(
                f"the Redis URL {shown} has database {db!r}; a database is a whole number "
                "from 0 (the server's 'databases' setting is the limit, 16 by default)"
            )
    return url


def url_from_env() -> str:
    """``REDIS_URL``, else ``REDIS_BACKEND``/``REDIS_BACKEND_DB``, else the local default."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if os.environ.get("REDIS_BACKEND"):
        return backend_url(os.environ["REDIS_BACKEND"], os.environ.get("REDIS_BACKEND_DB"))
    return DEFAULT_URL


def connect(target: str | redis.Redis | None = None, *, retries: int = 3) -> redis.Redis:
    """A client for ``target`` (a URL or a client), retrying briefly on connection errors."""
    if isinstance(target, redis.Redis):
        return target
    url = check_url(target or url_from_env())
    try:
        return redis.Redis.from_url(
            url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
            socket_connect_timeout=5,
            # A command that hangs (a cut connection) fails instead of blocking forever;
            # blocking waits (BLPOP) are kept shorter than this (fetch.py).
            socket_timeout=15,
            socket_keepalive=True,
            health_check_interval=30,
        )
    except ValueError as exc:  # a query parameter redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None


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


def describe(client: redis.Redis) -> str:
    """Where a client points, as a URL without credentials: ``redis://127.0.0.1:6379/0``."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{db}"


def ping(client: redis.Redis) -> None:
    """Reach the server once: ``RedisUnavailable`` when it cannot be reached,
    ``BadRedisURL`` when it refuses the connection's settings (a database index
    beyond the server's ``databases``, a bad password)."""
    try:
        client.ping()
    except REDIS_DOWN as exc:
        raise unavailable(client, exc) from exc
    except redis.exceptions.ResponseError as exc:
        raise BadRedisURL(
            f"Redis at {describe(client)} refused the connection ({exc}); check the "
            "database index and the credentials in REDIS_URL (or --redis-url)"
        ) from None


def unavailable(client: redis.Redis, exc: BaseException) -> RedisUnavailable:
    return RedisUnavailable(
        f"cannot reach Redis at {describe(client)} ({exc}); check that the server is running "
        "and that REDIS_URL (or --redis-url) points at it"
    )


def dedicated(client: redis.Redis) -> redis.Redis:
    """A client that keeps one connection of ``client``'s pool for itself. A worker's
    processor makes every call on its own connection anyway (a blocking wait holds
    one), and skipping the pool's per-call checkout and its check for stray data
    saves ~8 us a call. ``close()`` gives the connection back."""
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
    pool = client.connection_pool
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if not k.startswith(("orig_", "maint_"))  # derived ones, the pool adds its own
    }
    kwargs.update(
        socket_timeout=wait,
        socket_connect_timeout=wait,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), LEASE_CALL_ATTEMPTS - 1),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    )
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
