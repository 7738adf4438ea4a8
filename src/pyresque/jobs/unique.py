"""Unique jobs: at most one job of a class with the same arguments at a time.

A unique job takes a lock, ``<ns>:pyresque:unique:<digest>``, in the same atomic
step that enqueues or schedules it (enqueue_unique.lua, schedule.lua); while the
lock is held, enqueueing an equal job does nothing and returns None. The lock is
released when the job

* ``until="queued"``: leaves the delayed queue for its queue (it dedupes
  scheduled jobs; an immediate enqueue takes no lock),
* ``until="started"``: is started by a worker,
* ``until="finished"`` (default): ends, succeeded or finally failed (a retry
  keeps the lock: the job is not done),
* ``until="ttl"``: never explicitly, it only expires,

or when it leaves unrun: cancelled in the delayed queue, removed from its queue
(removal.py) or failed as a poison job by recovery. Every lock has a TTL, so a
crash can never leave one held forever. The payload carries the lock's name and
token (``"unique"``), so whoever moves, starts, finishes or removes the job
releases exactly its own lock: the Lua scripts release it only while that token
holds it (lib_lock.lua), never a newer job's lock.

This module holds the policy users declare; the lock itself (its name, token and
place in a payload) is protocol/unique_lock.py, and when it is taken and released
is middleware/unique.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyresque.protocol.unique_lock import UNTIL, UniqueLock


@dataclass(frozen=True)
class Unique:
    """A uniqueness policy, for a job class (``unique = Unique(...)``) or one enqueue.

    ``key(args)`` names what must be unique (default: the whole argument list);
    ``ttl`` (seconds) bounds how long a lock can be held in any case.
    """

    until: str = "finished"
    ttl: float = 3600.0
    key: Callable[[list[Any]], str] | None = None

    def __post_init__(self) -> None:
        if self.until not in UNTIL:
            raise ValueError(f"unique until={self.until!r}; choose one of {', '.join(UNTIL)}")
        if self.ttl <= 0:
            raise ValueError("a unique lock needs a positive ttl, so a crash cannot keep it")

    def lock_for(self, class_name: str, args: list[Any]) -> UniqueLock:
        """A fresh lock for a job of ``class_name`` with ``args``."""
        if self.key is not None:
            identity = f"{class_name}:{self.key(args)}"
        else:
            # Sorted keys: {"a":1,"b":2} and {"b":2,"a":1} are the same arguments.
            canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
            import hashlib  # here: loading OpenSSL would grow every job child (zygote.py)

            identity = f"{class_name}:{hashlib.sha1(canonical.encode()).hexdigest()}"
        return UniqueLock(identity, self.until, os.urandom(16).hex(), int(self.ttl * 1000))
