"""Values of each Redis type written where pyresque keeps another (a hand's or a hostile
client's), for the tests of keys of another type."""

from __future__ import annotations

import redis

#: The types a key that pyresque keeps as a list may hold instead.
KINDS = ["string", "hash", "zset", "set", "stream"]


def write(r: redis.Redis, key: str, kind: str, data: bytes) -> None:
    """A value of type ``kind`` ("list" too) at ``key``, in place of what it held."""
    r.delete(key)
    if kind == "string":
        r.set(key, data)
    elif kind == "hash":
        r.hset(key, data, data)
    elif kind == "zset":
        r.zadd(key, {data: 1.5})
    elif kind == "set":
        r.sadd(key, data)
    elif kind == "list":
        r.rpush(key, data)
    else:
        r.xadd(key, {data or b"f": data})
