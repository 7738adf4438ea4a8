"""Which queues a worker serves: its list as configured (names, globs, exclusions), and
the list resolved against the queues that exist, shared by the worker's processors.

A worker of globs reads Resque's ``queues`` set to expand them. Its processors share
one ``Resolution``: the set is read at most once a second per worker (sooner after a
``queues-changed`` token said a queue is new), however many processors claim and wait
for themselves (threads, asyncio and prefork workers that land their jobs).
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
import threading
import time
from dataclasses import dataclass

import redis

from pyresque.protocol.connection import text
from pyresque.protocol.keys import Keys

log = logging.getLogger("pyresque.worker")

#: Seconds a resolution of globs is used before the ``queues`` set is read again.
REFRESH_EVERY = 1.0

_GLOB = re.compile(r"[*?{}\[\]]")


def _expand_braces(pattern: str) -> list[str]:
    """Ruby's File::FNM_EXTGLOB: ``{a,b}`` alternatives."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in _expand_braces(head + alt + tail)]


def _fnmatch(name: str, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in _expand_braces(pattern))


@dataclass(frozen=True)
class QueueList:
    """A worker's queue list as configured: names, globs and ``!exclusions``, in order."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str | list[str]) -> QueueList:
        items = spec.split(",") if isinstance(spec, str) else spec
        patterns = tuple(p.strip() for p in items if p.strip())
        if not [p for p in patterns if not p.startswith("!")]:
            raise ValueError("no queue given: set QUEUE (e.g. QUEUE=default or QUEUE='*')")
        return cls(patterns)

    @property
    def included(self) -> list[str]:
        return [p for p in self.patterns if not p.startswith("!")]

    @property
    def excluded(self) -> list[str]:
        return [p[1:] for p in self.patterns if p.startswith("!")]

    @property
    def dynamic(self) -> bool:
        """True when the list depends on which queues exist (globs or exclusions)."""
        return bool(self.excluded) or any(_GLOB.search(p) for p in self.included)

    @property
    def id_part(self) -> str:
        """The queue part of the worker id: the configured list, exclusions dropped (Ruby)."""
        return ",".join(self.included)

    def resolve(self, existing: list[str]) -> list[str]:
        """Ruby's semantics: each pattern's matches sorted, in pattern order, de-duplicated,
        minus anything matching an exclusion."""
        ordered: list[str] = []
        for pattern in self.included:
            if _GLOB.search(pattern):
                ordered += sorted(q for q in existing if _fnmatch(q, pattern))
            else:
                ordered.append(pattern)
        seen: set[str] = set()
        result = []
        for queue in ordered:
            if queue not in seen and not any(_fnmatch(queue, ex) for ex in self.excluded):
                seen.add(queue)
                result.append(queue)
        return result


class Resolution:
    """A worker's queues in priority order, globs expanded (``resolved``), shared by its
    processors: ``refresh`` reads the ``queues`` set at most once every REFRESH_EVERY
    seconds, or at once after ``stale``."""

    def __init__(self, queues: QueueList) -> None:
        self.queues = queues
        self.resolved: list[str] = [] if queues.dynamic else queues.included
        self._lock = threading.Lock()  # one read at a time; ``stale`` waits for it
        self._read_at = -math.inf  # monotonic time of the last read's start
        self._skipped: set[bytes | str] = set()  # known queues' names that are not UTF-8

    def refresh(self, client: redis.Redis, keys: Keys) -> list[str]:
        """The queues served now: for globs, read again when the last read is
        REFRESH_EVERY old or ``stale`` was called since it began."""
        if not self.queues.dynamic or time.monotonic() - self._read_at < REFRESH_EVERY:
            return self.resolved  # (every busy claim asks: no lock while the list is fresh)
        with self._lock:
            now = time.monotonic()
            if now - self._read_at < REFRESH_EVERY:
                return self.resolved
            self._read_at = now
            names = []
            for member in client.smembers(keys.queues):
                try:
                    names.append(text(member))
                except UnicodeDecodeError:  # a peer's or a hand's bytes: no queue of ours
                    if member not in self._skipped:  # said once, not on every refresh
                        self._skipped.add(member)
                        log.warning("skipping a known queue whose name is not UTF-8: %r", member)
            resolved = self.queues.resolve(names)
            if resolved != self.resolved:  # the same list object: its keys are not rebuilt
                self.resolved = resolved
            return self.resolved

    def stale(self) -> None:
        """A queue is new (a ``queues-changed`` token): the next ``refresh`` reads. Taken
        under the lock, so a read that began before the token was taken is not trusted."""
        with self._lock:
            self._read_at = -math.inf
