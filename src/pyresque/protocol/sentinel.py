"""Redis under Sentinel: the ``redis+sentinel://`` target, and following a failover.

A Sentinel target names the Sentinels and the service, not the master::

    redis+sentinel://[user:password@]host1:26379,host2:26379/mymaster[/db][?options]

``rediss+sentinel://`` speaks TLS to the master. The user and password are the
master's (an ACL user). Options (query parameters):

* ``sentinel_username``, ``sentinel_password``: the Sentinels' own credentials;
* ``sentinel_ssl=true``: TLS to the Sentinels too (default: as the scheme says);
* ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``: TLS settings,
  for every TLS connection of the target.

The client is redis-py's ``Sentinel(...).master_for(...)``: each new connection
asks the Sentinels where the master is, and one to a demoted master is dropped,
so a client follows a failover by reconnecting (its retries, then the callers'
backoff). A client's ``MasterWatch`` logs a move once (one line) and tells whoever
listens (the worker pauses its jobs: worker/failover.py); the asyncio client
(aio.py) has one too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
from redis.connection import SSLConnection
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

from pyresque.exceptions import BadRedisURL

log = logging.getLogger("pyresque.redis")

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
_FORM = "write redis+sentinel://[user:password@]host1:26379,host2:26379/mymaster[/db]"
_TLS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_OPTIONS = ("sentinel_username", "sentinel_password", "sentinel_ssl", *_TLS)
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
#: How long a Sentinel may take to answer where the master is before the next is asked.
SENTINEL_TIMEOUT = 1.0

Address = tuple[str, int]


def is_sentinel(target: str) -> bool:
    """Whether ``target`` is a Sentinel URL."""
    return target.strip().lower().startswith(tuple(s + "://" for s in SCHEMES))


def redact(url: str) -> str:
    """``url`` without its passwords (the master's and the Sentinels'), for messages."""
    url = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
    return re.sub(r"([?&](?:sentinel_)?password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed Sentinel URL."""

    sentinels: list[Address]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_tls: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls_options: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        """The target as a URL without credentials."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"{SCHEMES[self.tls]}://{hosts}/{self.service}/{self.db}"


def parse(url: str) -> SentinelTarget:
    """A Sentinel URL's parts; ``BadRedisURL`` saying what is wrong (no password shown)."""
    shown = redact(url.strip())

    def bad(problem: str) -> BadRedisURL:
        return BadRedisURL(f"the Redis URL {shown} {problem}; {_FORM}")

    scheme, username, password, sentinels, path, query = split_hosts_url(
        url, SCHEMES, DEFAULT_PORT, "Sentinel", bad
    )
    service, _, db_text = path.strip("/").partition("/")
    if not service:
        raise bad("names no service (the master's name in the Sentinels' configuration)")
    if db_text and (not db_text.isdigit() or not db_text.isascii()):
        raise bad(f"has database {db_text!r}; a database is a whole number from 0")
    options = dict(parse_qsl(query))
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise bad(f"has unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    tls = scheme.lower() == SCHEMES[1]
    sentinel_tls = _BOOLS.get(options.get("sentinel_ssl", str(tls)).lower())
    if sentinel_tls is None:
        raise bad(f"has sentinel_ssl={options['sentinel_ssl']!r}; say true or false")
    tls_options = {k: v for k, v in options.items() if k in _TLS}
    if tls_options and not (tls or sentinel_tls):
        raise bad(f"has TLS settings ({', '.join(tls_options)}) but uses no TLS")
    return SentinelTarget(
        sentinels,
        service,
        int(db_text or 0),
        username,
        password,
        tls,
        sentinel_tls,
        options.get("sentinel_username"),
        options.get("sentinel_password"),
        tls_options,
    )


def split_hosts_url(
    url: str,
    schemes: tuple[str, ...],
    default_port: int,
    what: str,
    bad: Callable[[str], Exception],
) -> tuple[str, str | None, str | None, list[Address], str, str]:
    """A URL that names several hosts (Sentinel's, Cluster's): its scheme (one of
    ``schemes``), user name and password (unquoted), hosts (``what`` they are, for
    messages; ``default_port`` where none is given), path and query."""
    scheme, _, rest = url.strip().partition("://")
    if scheme.lower() not in schemes:
        raise bad(f"has scheme {scheme!r}, not {' or '.join(schemes)}")
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return (
        scheme,
        username,
        password,
        [_address(part, default_port, what, bad) for part in hosts.split(",")],
        path,
        query,
    )


def _address(part: str, default_port: int, what: str, bad: Callable[[str], Exception]) -> Address:
    host, colon, port_text = part.strip().rpartition(":")
    if not colon:
        host, port_text = port_text, str(default_port)
    host = host.strip("[]")  # an IPv6 address
    if not host:
        raise bad(f"names a {what} without a host ({part!r})")
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
        raise bad(f"has {what} port {port_text!r}; a port is a number from 1 to 65535")
    return host, int(port_text)


#: What redis-py's errors say when a Sentinel refused the credentials (or had none).
_REFUSED = ("AuthenticationError", "WRONGPASS", "NOAUTH", "NOPERM", "invalid username-password")


class MasterWatch:
    """Where the master of one Sentinel target was last seen; a move is logged once
    (one line) and told to the listeners (``on_master_moved``). Shared by the
    synchronous manager below and the asyncio one (aio.py)."""

    def __init__(self, target: SentinelTarget) -> None:
        self.target = target
        self.master: Address | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Address], None]] = []

    def saw(self, service: str, address: Address) -> None:
        """The Sentinels name ``address`` as the master now."""
        with self._lock:  # of threads that see the move at once, one reports it
            previous, self.master = self.master, address
            moved = previous is not None and previous != address
            listeners = list(self._listeners) if moved else []
        if moved:
            log.warning("Redis master for %s moved to %s:%s", service, *address)
        for listener in listeners:
            listener(address)

    def not_found(self, service: str, errors: str) -> str:
        """Why no master was found, from redis-py's ``errors`` (which hold every
        connection's repr, so they are not shown)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.target.sentinels)
        if any(word in errors for word in _REFUSED):
            why = (
                "a Sentinel refused the credentials: check sentinel_username and "
                "sentinel_password in the URL"
            )
        else:
            why = "unreachable, not monitoring it, or the master is down and not yet replaced"
        return f"no Sentinel of {hosts} named a master for {service!r} ({why})"

    def listen(self, listener: Callable[[Address], None], remove: bool = False) -> None:
        with self._lock:
            if remove:
                if listener in self._listeners:
                    self._listeners.remove(listener)
            else:
                self._listeners.append(listener)


class FollowingSentinel(Sentinel):
    """redis-py's Sentinel manager, telling its ``watch`` where the master is."""

    def __init__(self, target: SentinelTarget, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = MasterWatch(target)

    def discover_master(self, service_name: str) -> Address:
        try:
            address: Address = super().discover_master(service_name)
        except MasterNotFoundError as exc:
            raise MasterNotFoundError(self.watch.not_found(service_name, str(exc))) from None
        self.watch.saw(service_name, address)
        return address


class FollowingConnection(SentinelManagedConnection):
    """A connection that asks where the master is each time it connects. redis-py's
    asks only when taken from the pool: a connection kept for one caller
    (``dedicated``, single_connection_client) reconnected to the old address, a
    demoted master that refuses every write (redis-py 8.2)."""

    def connect(self) -> None:
        self.retry.call_with_retry(
            lambda: self.connect_check_health(check_health=True, retry_socket_connect=False),
            lambda error: None,
        )

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health, retry_socket_connect)


class FollowingSSLConnection(FollowingConnection, SSLConnection):
    """``FollowingConnection`` over TLS."""


def options(url: str, **settings: Any) -> tuple[SentinelTarget, dict[str, Any], dict[str, Any]]:
    """The parsed target, the master's connection settings (``settings``, pyresque's
    timeouts and retries, with the database, credentials and TLS) and the Sentinels';
    no I/O, so the asyncio client (aio.py) connects the same way."""
    target = parse(url)

    def login(username: str | None, password: str | None, tls: bool) -> dict[str, Any]:
        given = {"username": username, "password": password}
        return {
            **{name: value for name, value in given.items() if value is not None},
            **(dict(ssl=True, **target.tls_options) if tls else {}),
        }

    master = dict(settings, db=target.db, **login(target.username, target.password, target.tls))
    # The Sentinels answer one small command: a short timeout, so a dead one is skipped
    # quickly for the next.
    to_sentinels = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        **login(target.sentinel_username, target.sentinel_password, target.sentinel_tls),
    }
    return target, master, to_sentinels


def connect(url: str, **settings: Any) -> redis.Redis:
    """A client to the master of the Sentinel target ``url``. ``settings`` are the
    connection settings of pyresque's clients (timeouts, retries)."""
    target, master, to_sentinels = options(url, **settings)
    tls = master.pop("ssl", False)
    master["connection_class"] = FollowingSSLConnection if tls else FollowingConnection
    manager = FollowingSentinel(target, target.sentinels, sentinel_kwargs=to_sentinels)
    try:
        client: redis.Redis = manager.master_for(target.service, redis_class=redis.Redis, **master)
        return client
    except (ValueError, TypeError) as exc:  # a setting redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None


def watch_of(client: Any) -> MasterWatch | None:
    """The watch of ``client``'s Sentinel target (sync or asyncio), if ``connect`` or
    ``aio.connect`` made it."""
    pool = getattr(client, "connection_pool", None)  # none on a Cluster client
    manager = getattr(pool, "sentinel_manager", None)
    watch = getattr(manager, "watch", None)
    return watch if isinstance(watch, MasterWatch) else None


def on_master_moved(
    client: redis.Redis, listener: Callable[[Address], None], *, remove: bool = False
) -> bool:
    """Call ``listener`` (from the thread that noticed, so quick) each time the master of
    ``client``'s Sentinel target moves (or no more, with ``remove``); False if
    ``client`` is not on Sentinel."""
    watch = watch_of(client)
    if watch is None:
        return False
    watch.listen(listener, remove)
    return True


def sibling(client: redis.Redis, **overrides: Any) -> redis.Redis | None:
    """A client with a pool of its own to the master of ``client``'s Sentinel target,
    with connection settings ``overrides`` (the worker's lease client); None if
    ``client`` is not on Sentinel. It shares the Sentinel manager, so a move is
    noticed (and logged) once."""
    pool = client.connection_pool
    if watch_of(client) is None or not isinstance(pool, SentinelConnectionPool):
        return None
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k != "connection_pool" and not k.startswith(("orig_", "maint_"))
    }
    kwargs.update(overrides)
    own = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        pool.service_name, pool.sentinel_manager, connection_class=pool.connection_class, **kwargs
    )
    return redis.Redis(connection_pool=own)


def describe(client: Any) -> str | None:
    """Where ``client`` points (the Sentinel target and the master last seen), without
    credentials; None if it is not on Sentinel."""
    watch = watch_of(client)
    if watch is None:
        return None
    where = watch.target.shown()
    if watch.master is not None:
        where += f" (master {watch.master[0]}:{watch.master[1]})"
    return where
