"""Forgetting idle queues: an opt-in, because Resque never forgets one.

Resque's ``queues`` set keeps a name until ``remove_queue``; resque-web, Ruby's
``Resque.queues`` and workers with globs (``*``) read it. With a queue per tenant,
per day or per run, it grows without bound. ``forget_idle_queues(idle)`` takes out
the names whose queue has been empty, and named by no registered worker, at every
call for at least ``idle`` seconds: run it periodically (from cron, say) at an interval
well under ``idle``; the first call that sees a queue empty marks it, a later one
forgets it. A queue is never deleted (it is empty), and a job enqueued later puts its
name back (pyresque's enqueue in the same script as its push; Ruby's next to it,
which is why names forgotten in the last hour are checked again on each call).

Each script call handles 200 names (queues_forget.lua), so no call blocks Redis for
long; the whole run visits every name of the set once (SSCAN).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pyresque.client.admin.base import Namespace
from pyresque.client.admin.workers import worker_ids
from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.slots import name_queues

#: Names per script call.
_CHUNK = 200
#: How long a forgotten name is checked again for a job pushed by a producer that
#: sends SADD and RPUSH as two commands (Ruby's ``Resque.push``), in ms.
RECHECK_MS = 3_600_000
_GLOB = set("*?[{!")


def forget_idle_queues(resque: Namespace, idle: float) -> dict[str, list[str]]:
    """Forget the queues empty and unwatched for ``idle`` seconds (see the module's
    docstring); returns ``{"forgotten": names, "restored": names}``, the latter those
    forgotten earlier that got a job without their name coming back."""
    if not math.isfinite(idle) or idle < 0:
        raise ValueError(f"idle must be a number of seconds >= 0, not {idle!r}")
    keys, r = resque.keys, resque.redis
    watched = _watched(resque)
    if keys.clustered:
        return _forget_on_cluster(resque, int(idle * 1000), watched)
    restored = _run(resque, "recheck", 0, r.zscan_iter(keys.queues_forgotten, count=1000), watched)
    idle_ms = int(idle * 1000)
    forgotten = _run(resque, "sweep", idle_ms, r.sscan_iter(keys.queues, count=1000), watched)
    # Marks of names no longer in the set (remove_queue, another client) go too.
    _run(resque, "clean", idle_ms, r.zscan_iter(keys.queues_idle, count=1000), watched)
    text = [as_name(n) for n in forgotten]
    return {"forgotten": text, "restored": [as_name(n) for n in restored]}


def as_name(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _watched(resque: Namespace) -> set[bytes]:
    """The queue names registered workers name literally (``host:pid:q1,q2``); a glob
    watches whatever the set holds, so it keeps nothing."""
    names: set[bytes] = set()
    for worker_id in worker_ids(resque):
        for name in worker_id.split(b":", 2)[-1].split(b","):
            if name and not _GLOB & set(name.decode("latin-1")):
                names.add(name)
    return names


def _run(
    resque: Namespace, mode: str, idle_ms: int, found: Iterable[Any], watched: set[bytes]
) -> list[bytes]:
    changed: list[bytes] = []
    base = raw(resque.keys.queue(""))
    keys = resque.keys
    head = [keys.queues, keys.queues_idle, keys.queues_forgotten, keys.queues_changed]
    for names in _chunks(raw(m[0] if isinstance(m, tuple) else m) for m in found):
        flags = ["1" if name in watched else "" for name in names]
        args = [mode, idle_ms, RECHECK_MS, len(names), *names, *flags]
        reply = scripts.run(resque.redis, "queues_forget", head + [base + n for n in names], args)
        changed += [raw(name) for name in reply]
    return changed


def _forget_on_cluster(
    resque: Namespace, idle_ms: int, watched: set[bytes]
) -> dict[str, list[str]]:
    """``forget_idle_queues`` on Redis Cluster, where a queue and the home ``queues``
    set are in different slots: queues_forget.lua sweeps in each queue's slot, on the
    copy of the set an enqueue keeps there (its SADD is in the push's script), so a
    queue is forgotten there only while empty, atomically; then the name leaves the
    home set. An enqueue between the two steps, or later by a producer that named the
    queue in the home set before, puts the name back in the slot's copy only: the
    recheck of each run (forgotten names are kept RECHECK_MS) puts it back home."""
    keys, r = resque.keys, resque.redis
    home = keys.home
    now_ms = time.time() * 1000
    restored = []
    for member, since in list(r.zscan_iter(home.queues_forgotten, count=1000)):
        name = raw(member)
        if not _utf8(name):  # not a name pyresque wrote: left as it is
            r.zrem(home.queues_forgotten, name)
            continue
        at = keys.for_queue(name.decode())
        pipe = r.pipeline(transaction=False)
        pipe.sismember(at.queues, name)  # type: ignore[arg-type]  # any bytes name a queue
        pipe.exists(keys.queue_key(name))
        back = any(pipe.execute())
        if back:
            name_queues(r, keys, [name])
            restored.append(name)
        if back or now_ms - since >= RECHECK_MS:
            r.zrem(home.queues_forgotten, name)
            r.zrem(at.queues_forgotten, name)
    forgotten = []
    for member in list(r.sscan_iter(home.queues, count=1000)):
        name = raw(member)
        if not _utf8(name):  # not a name pyresque wrote: left as it is
            continue
        at = keys.for_queue(name.decode())
        head = [at.queues, at.queues_idle, at.queues_forgotten, at.queues_changed]
        args = ["sweep", idle_ms, RECHECK_MS, 1, name, "1" if name in watched else ""]
        if scripts.run(r, "queues_forget", [*head, keys.queue_key(name)], args):
            r.srem(home.queues, name)
            r.zadd(home.queues_forgotten, {name: now_ms})
            forgotten.append(name)
    return {
        "forgotten": [as_name(n) for n in forgotten],
        "restored": [as_name(n) for n in restored],
    }


def _utf8(name: bytes) -> bool:
    """Whether ``name`` is a non-empty UTF-8 queue name (one whose slot has a name)."""
    try:
        return bool(name.decode())
    except UnicodeDecodeError:
        return False


def _chunks(names: Iterable[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for name in names:
        chunk.append(name)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
