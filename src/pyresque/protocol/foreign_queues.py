"""Queues whose key holds another type: skipped by every claim, said in a log line.

A queue's key (Resque's ``queue:<name>``) is the user's: a string, hash, set, sorted
set or stream written there by hand, by another application sharing the namespace, or
by a hostile client holds no job a worker can take, and is never deleted or changed
here (the worker's own keys of another type are: landing_claims.py ``past_foreign``).
The claims skip it (lib_types.lua ``from_queue``; a worker of one queue sees its move
fail: landing_claims.py) and go on with the other queues in their priority order; the
queue is served again as soon as it is a list again, or gone, without a restart.

Said once when first seen, then again every REPEAT seconds while it lasts, once per
process whichever processor saw it: a busy worker meets the key at every claim, and a
line each time would bury every other line of its log, while a line every few
minutes still shows in a log read hours later that the queue is not served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pyresque.protocol.connection import text

log = logging.getLogger("pyresque.worker")

#: Seconds between two lines about the same key while it still holds another type.
REPEAT = 600.0
#: The exception a failure record names for a job its queue could not take back.
FAILURE = "pyresque.ForeignQueue"

_lock = threading.Lock()
_said: dict[str, float] = {}  # key -> time.monotonic() of its last line


def skipped(queue: str, key: str, found: str) -> None:
    """A claim skipped ``queue``: its ``key`` holds a ``found`` (rate-limited: REPEAT)."""
    now = time.monotonic()
    with _lock:
        last = _said.get(key)
        if last is not None and now - last < REPEAT:
            return
        _said[key] = now
    log.error(
        "skipping queue %r: its key %s holds a %s, not a list, so it holds no job a worker "
        "can take; delete or rename it (it is left as it is) and the queue is served "
        "again, without a restart. Said again every %d minutes while it lasts",
        queue,
        key,
        found,
        int(REPEAT // 60),
    )


def refused(key: str, found: str) -> str:
    """Why a job given back to a queue whose ``key`` holds a ``found`` went to ``failed``
    instead (recovery.py: a dead worker's, a stopping worker's)."""
    return (
        f"its queue's key {key} holds a {found}, not a list, so the job could not be put "
        "back on its queue (the key is left as it is); retry it once the key is a list "
        "again, or gone"
    )


def named(reply: list[Any], key_of: Callable[[str], str]) -> list[Any]:
    """A claim script's reply without its last element when that names the queues it
    skipped ({name, type, ...}: lib_claim.lua, land_claim.lua), each said (``skipped``);
    ``key_of`` is a queue's key."""
    if not reply or not isinstance(reply[-1], list):
        return reply
    *rest, names = reply
    for i in range(0, len(names) - 1, 2):
        queue = text(names[i])
        skipped(queue, key_of(queue), text(names[i + 1]))
    return rest
