"""Where Redis is: the URL forms every component accepts, php-resque's ``REDIS_BACKEND``
forms, the environment, and the TLS settings of a ``rediss://`` URL.

A target is a URL (``redis://``, ``rediss://``, ``unix://``, or php-resque's ``host:port``
and ``tcp://``), with ACL credentials (``user:password@``), a database index and, for
``rediss://``, TLS settings as query parameters named as in redis-py
(``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``,
``ssl_check_hostname``) or as ``PYRESQUE_SSL_*`` environment variables (a parameter
in the URL wins). ``connection.connect`` turns a target into a client; nothing else
reads these.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pyresque.exceptions import BadRedisURL
from pyresque.protocol.escapes import escape

#: Where a connection's URL comes from, as the errors name it (a command whose URLs
#: come from other options names those instead: cli/cluster_copy.py).
URL_SETTING = "REDIS_URL (or --redis-url)"

DEFAULT_URL = "redis://127.0.0.1:6379/0"

_URL_FORMS = "write redis://host:port/db, rediss://host:port/db, unix:///path?db=N or host:port"

#: TLS settings of a ``rediss://`` URL (redis-py's names) and the environment
#: variables that give them when the URL does not.
TLS_PARAMS: dict[str, str] = {
    "ssl_ca_certs": "PYRESQUE_SSL_CA_CERTS",
    "ssl_certfile": "PYRESQUE_SSL_CERTFILE",
    "ssl_keyfile": "PYRESQUE_SSL_KEYFILE",
    "ssl_cert_reqs": "PYRESQUE_SSL_CERT_REQS",
    "ssl_check_hostname": "PYRESQUE_SSL_CHECK_HOSTNAME",
}
_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("required", "optional", "none")
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def backend_url(backend: str, db: str | int | None = None) -> str:
    """Turn php-resque's ``REDIS_BACKEND`` (and ``REDIS_BACKEND_DB``) into a redis URL.

    Accepts ``host``, ``host:port``, ``redis://…``, ``rediss://…``, ``tcp://host:port``,
    ``unix:///path`` and Sentinel URLs (``redis+sentinel://hosts/service``). A database
    in the URL's path wins over ``db``.
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
    given = db not in (None, "")
    if scheme.lower().endswith("+sentinel") and given and path and "/" not in path.rstrip("/"):
        path = f"{path.rstrip('/')}/{db}"  # the path names the service, then the database
    return f"{scheme}://{authority}/{path or (db if given else 0)}{mark}{query}"


def redact(url: str) -> str:
    """``url`` without its password (``user:password@`` or a ``password=`` parameter,
    which redis-py reads too), for messages."""
    url = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def check_url(target: str) -> str:
    """``target`` in any form ``REDIS_URL`` or ``REDIS_BACKEND`` takes (``host:port``
    too) as a redis URL with a host, a port in 1..65535 and a whole database index;
    else ``BadRedisURL`` saying what is wrong. (Whether the database exists is only
    known by asking the server: ``ping``.)"""
    url = backend_url(target)
    shown = escape(redact(target.strip()))  # a message names it on one line
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6] address
        raise BadRedisURL(f"the Redis URL {shown} cannot be parsed ({exc}); {_URL_FORMS}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise BadRedisURL(f"the Redis URL {shown} has scheme {parts.scheme!r}; {_URL_FORMS}")
    query = parse_qsl(parts.query)
    dbs = [value for name, value in query if name == "db"]
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
    tls = {name: value for name, value in query if name in TLS_PARAMS}
    if tls and parts.scheme != "rediss":
        raise BadRedisURL(
            f"the Redis URL {shown} has TLS settings ({', '.join(tls)}) but is not rediss://; "
            "use rediss://host:port/db for TLS"
        )
    return url


def url_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """``REDIS_URL``, else ``REDIS_BACKEND``/``REDIS_BACKEND_DB``, else the local default."""
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"]
    if environ.get("REDIS_BACKEND"):
        return backend_url(environ["REDIS_BACKEND"], environ.get("REDIS_BACKEND_DB"))
    return DEFAULT_URL


def with_tls(url: str, settings: Mapping[str, str | None]) -> str:
    """``url`` (``rediss://``, ``rediss+sentinel://`` or ``rediss+cluster://``) with the
    TLS ``settings`` (``TLS_PARAMS`` names) that it does not set itself added to its query: how
    command-line options and the environment reach the one URL every part of a process
    connects with."""
    given = {name: value for name, value in settings.items() if value not in (None, "")}
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    missing = {name: value for name, value in given.items() if name not in dict(query)}
    if not missing:
        return url
    if parts.scheme.lower() not in ("rediss", "rediss+sentinel", "rediss+cluster"):
        names = ", ".join(f"{name} ({TLS_PARAMS[name]})" for name in missing)
        raise BadRedisURL(
            f"TLS settings are given ({names}) but the Redis URL {redact(url)} is not "
            "rediss://; use rediss://host:port/db for TLS"
        )
    return urlunsplit(parts._replace(query=urlencode([*query, *missing.items()])))


def tls_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str | None]:
    """The TLS settings the ``PYRESQUE_SSL_*`` environment variables give."""
    return {name: environ.get(variable) for name, variable in TLS_PARAMS.items()}


def split_tls(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without its TLS parameters, and those as redis-py keyword arguments
    (checked: a file that cannot be read, or a value redis-py would misread, is a
    ``BadRedisURL`` here rather than a handshake error later)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    kwargs: dict[str, Any] = {}
    for name, value in query:
        if name not in TLS_PARAMS:
            continue
        where = f"{name} (in the Redis URL or {TLS_PARAMS[name]})"
        if name in _FILES:
            try:
                with open(value, "rb"):
                    pass
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise BadRedisURL(f"{where}: cannot read {escape(value)}: {reason}") from None
            kwargs[name] = value
        elif name == "ssl_cert_reqs":
            if value.lower() not in _CERT_REQS:
                raise BadRedisURL(
                    f"{where} is {escape(value)!r}; write one of {', '.join(_CERT_REQS)}"
                )
            kwargs[name] = value.lower()
        elif value.lower() in _BOOLS:  # ssl_check_hostname
            kwargs[name] = _BOOLS[value.lower()]
        else:
            raise BadRedisURL(f"{where} is '{escape(value)}'; write true or false")
    if kwargs.get("ssl_cert_reqs") == "none":
        kwargs.setdefault("ssl_check_hostname", False)  # nothing to check a name against
    rest = [(name, value) for name, value in query if name not in TLS_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(rest))), kwargs
