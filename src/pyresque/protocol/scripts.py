"""The Lua scripts that make each Redis-side step atomic.

The sources live in ``lua/``, one readable file per step. Shared helpers
(``lib_*.lua``) are prepended to the scripts that use them. Every script gets
every key it touches through KEYS, so the same scripts run on Redis Cluster
when the namespace is a hash tag. Every script also starts by checking that the
number of KEYS is what its ARGV asks for (lib_keys.lua, prepended to all): a
caller out of step with a script gets an error naming it, not a wrong write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

import redis
from redis.commands.core import Script as RedisScript

from pyresque.protocol.connection import text

log = logging.getLogger("pyresque.redis")

#: script name -> the helper libraries it needs
_LIBS: dict[str, tuple[str, ...]] = {
    "enqueue": ("push",),
    "claim": ("clock", "wake", "claim"),
    "land_claim": ("wake",),
    "adopt": ("clock",),
    "finish": ("clock", "status", "lock", "delayed", "push", "workflow", "finish"),
    "finish_claim": (
        "clock",
        "status",
        "lock",
        "delayed",
        "push",
        "workflow",
        "finish",
        "wake",
        "claim",
    ),
    "mark_running": ("clock", "status"),
    "heartbeat": ("clock", "types"),
    "foreign_clear": ("types",),
    "lease_renew": ("clock", "types"),
    "history": (),
    "recover": ("clock", "status", "lock", "push"),
    "reap": ("clock",),
    "peer_fence": (),
    "retry_failed": ("clock", "push", "workflow"),
    "failed_swap": (),
    "failed_remove_at": (),
    "failed_trim": (),
    "lengths": (),
    "heads": (),
    "queues_forget": ("clock", "types"),
    "queue_detach": (),
    "queue_drain": ("lock",),
    "enqueue_unique": ("lock", "push"),
    "wf_enqueue": ("clock", "push", "delayed", "workflow"),
    "wf_settle": ("clock", "push", "workflow"),
    "wf_report": ("clock", "push", "workflow"),
    "wf_retry": ("clock", "push", "workflow"),
    "wf_push": ("clock", "status", "push", "delayed"),
    "unlock": ("lock",),
    "remove_jobs": ("lock",),
    "schedule": ("lock", "delayed"),
    "delayed_take": ("push", "lock"),
    "delayed_unschedule": (),
    "delayed_note": (),
    "delayed_due": (),
    "delayed_settle": (),
    "cron_leader": ("lock",),
    "cron_fire": ("push",),
    "limit_acquire": ("clock", "limits"),
    "limit_park": ("clock", "limits", "push", "release"),
    "limit_wake": ("clock", "limits", "push"),
    "limit_defer": ("clock", "release"),
    "limit_rate_wake": ("clock", "push"),
    "limit_delay": ("release", "delayed"),
}
#: helper library -> the libraries whose helpers it calls (prepended before it)
_NEEDS: dict[str, tuple[str, ...]] = {
    "push": ("types",),
    "wake": ("types",),
    "claim": ("types",),
}


def _read(name: str) -> str:
    source = resources.files("pyresque.protocol") / "lua" / f"{name}.lua"
    return source.read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full source of a script, helpers included."""
    libs: list[str] = []
    for lib in ("keys", *_LIBS[name]):
        libs += [need for need in (*_NEEDS.get(lib, ()), lib) if need not in libs]
    parts = [_read(f"lib_{lib}") for lib in libs]
    return "\n".join([f"local SCRIPT = '{name}'", *parts, _read(name)])


@cache
def script(name: str) -> RedisScript:
    """Script ``name`` (its ``sha`` and source), for callers that make the call themselves."""
    # Not bound to a client: each call names its client (or pipeline).
    return RedisScript(None, source(name).encode())  # type: ignore[arg-type]


def run(
    client: redis.Redis | redis.client.Pipeline,
    name: str,
    keys: Sequence[str | bytes],
    args: list[Any],
) -> Any:
    """Run script ``name``; on a pipeline this queues the call (loaded on execute).

    With debug logging (``VVERBOSE``) every call is logged with its keys, and its
    reply unless it was queued on a pipeline.
    """
    reply = _call(script(name), client, keys, args)
    if log.isEnabledFor(logging.DEBUG):  # checked here: this runs for every job
        logged(name, keys, reply)
    return reply


def clear_foreign(client: redis.Redis, own: Mapping[str, str]) -> list[tuple[str, str]]:
    """Delete the keys of ``own`` (a key of pyresque's that can hold no job -> the type
    kept there) that hold another type (foreign_clear.lua, one call: on Cluster, keys
    of one slot); each one deleted, with the type it held."""
    return foreign_cleared(run(client, "foreign_clear", list(own), list(own.values())))


def foreign_cleared(reply: list[bytes]) -> list[tuple[str, str]]:
    """foreign_clear.lua's reply: each key deleted, with the type it held."""
    return [(text(key), text(found)) for key, found in zip(reply[::2], reply[1::2], strict=True)]


def logged(name: str, keys: Sequence[str | bytes], reply: Any) -> None:
    """Log a script call with debug logging on (``VVERBOSE``)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("redis %s.lua keys=%s -> %s", name, keys, _short(reply))


#: A script call: the script's name, its keys, its arguments.
ScriptCall: TypeAlias = "tuple[str, Sequence[str | bytes], list[Any]]"


def run_many(
    client: redis.Redis, calls: Sequence[ScriptCall], wait: tuple[int, int] | None = None
) -> list[Any]:
    """Run script calls ``(name, keys, args)`` in one round trip (a pipeline), and return
    their replies. A call the server refused with NOSCRIPT (its cache was flushed after
    the pipeline checked it) is run again on its own; only that one, so nothing is
    written twice. Any other error is raised. With ``wait`` (``WAIT numreplicas
    timeout_ms``, durability.py) the replies end with how many replicas acknowledged
    all the calls."""
    pipe = client.pipeline(transaction=False)
    for name, keys, args in calls:
        run(pipe, name, keys, args)
    if wait is not None:
        pipe.wait(*wait)  # on the pipeline's connection: it covers every call before it
    replies = pipe.execute(raise_on_error=False)
    acked = replies.pop() if wait is not None else 0
    for i, reply in enumerate(replies):
        if isinstance(reply, redis.exceptions.NoScriptError):
            name, keys, args = calls[i]
            if wait is None:
                replies[i] = run(client, name, keys, args)
            else:  # run again with a WAIT of its own
                replies[i], again = run_and_wait(client, name, keys, args, wait)
                acked = min(acked, again)
        elif isinstance(reply, Exception):
            raise reply
    if isinstance(acked, Exception):
        raise acked
    return [*replies, acked] if wait is not None else replies


def _call(
    script: RedisScript,
    client: redis.Redis | redis.client.Pipeline,
    keys: Sequence[str | bytes],
    args: list[Any],
) -> Any:
    if isinstance(client, redis.client.Pipeline):
        return script(keys=keys, args=args, client=client)  # the pipeline loads it if need be
    # The hot path (every job, every enqueue): EVALSHA straight away.
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        # The server lost its script cache (a restart, a failover, SCRIPT FLUSH). EVAL
        # runs the source and caches it again in one step, where a SCRIPT LOAD then
        # EVALSHA could be flushed again in between.
        return client.eval(script.script, len(keys), *keys, *args)  # type: ignore[arg-type]


def _short(reply: Any) -> str:
    text = repr(reply)
    return text if len(text) <= 200 else text[:200] + "..."


def run_and_wait(
    client: redis.Redis,
    name: str,
    keys: Sequence[str | bytes],
    args: list[Any],
    wait: tuple[int, int],
) -> tuple[Any, int]:
    """Run script ``name``, then ``WAIT numreplicas timeout_ms`` (``wait``) on the same
    connection, in one round trip; returns the script's reply and how many replicas
    acknowledged its writes (durability.py)."""
    called = script(name)
    for cached in (True, False):
        pipe = client.pipeline(transaction=False)
        if cached:
            pipe.evalsha(called.sha, len(keys), *keys, *args)
        else:  # the server lost its script cache: EVAL caches it again (see _call)
            pipe.eval(called.script, len(keys), *keys, *args)  # type: ignore[arg-type]
        pipe.wait(*wait)
        reply, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError) and cached:
            continue
        return waited(name, keys, reply, acked)
    raise AssertionError("unreachable")  # pragma: no cover


def waited(name: str, keys: Sequence[str | bytes], reply: Any, acked: Any) -> tuple[Any, int]:
    """A script's reply and its WAIT's (run_and_wait, and aio's): raised if either failed."""
    for result in (reply, acked):
        if isinstance(result, Exception):
            raise result
    logged(name, keys, reply)
    return reply, int(acked)
