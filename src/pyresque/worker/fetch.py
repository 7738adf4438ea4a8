"""Fetching jobs: which queues a worker serves, claiming the next job, waiting for work.

A claim is one Lua call (claim.lua) that pops the next job in priority order
and records it as in flight in the same step. An idle worker waits for a
wake-up token that pyresque producers leave (enqueue.lua), so it starts a job
within milliseconds without polling; jobs pushed by Ruby or PHP producers,
which leave no token, are found by the claim that follows each wait timeout.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, cast

import redis

from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import MAX_BLOCK, text
from pyresque.protocol.keys import Keys

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


class Paused:
    """Returned by ``Fetcher.claim`` while ``pause-all-workers`` is set."""


PAUSED = Paused()


class Fetcher:
    """Claims jobs for one worker and waits for new ones."""

    def __init__(
        self, client: redis.Redis, keys: Keys, worker_id: str, queues: QueueList, lease_ms: int
    ) -> None:
        self._redis = client
        self._keys = keys
        self._worker_id = worker_id
        self.queues = queues
        self._lease_ms = lease_ms
        self._resolved: list[str] = [] if queues.dynamic else queues.included
        self._claim_keys: tuple[list[str] | None, list[str]] = (None, [])

    def refresh(self) -> list[str]:
        """Re-expand globs against the queues that exist now (called once per idle cycle)."""
        if self.queues.dynamic:
            names = [text(m) for m in self._redis.smembers(self._keys.queues)]
            self._resolved = self.queues.resolve(names)
        return self._resolved

    def claim(self, tokens: list[str]) -> list[Claim] | Paused:
        """Claim the next jobs in priority order, one per token (the first token's job
        is the first in line); fewer, or none, when the queues run out."""
        keys, args = self._claim_call(tokens)
        return self._claimed(scripts.run(self._redis, "claim", keys, args), tokens)

    def finish(
        self, keys: list[str], args: list[Any], next_tokens: list[str]
    ) -> tuple[bool, list[Claim] | Paused]:
        """Record how a job ended (finish.lua) and claim the next jobs, one per token, in
        the same round trip. Returns (recorded, next claims); recorded is False when the
        job had been recovered from us (fenced)."""
        if not next_tokens:
            return bool(scripts.run(self._redis, "finish", keys, args)), []
        claim_keys, claim_args = self._claim_call(next_tokens)
        recorded, reply = scripts.run(
            self._redis, "finish_claim", keys + claim_keys, [len(keys), *args, *claim_args]
        )
        return bool(recorded), self._claimed(reply, next_tokens)

    def _claim_call(self, tokens: list[str]) -> tuple[list[str], list[Any]]:
        queues = self._resolved
        if self._claim_keys[0] is not queues:  # built again only when the queues change
            keys = [
                self._keys.pause_all,
                self._keys.leases,
                self._keys.inflight(self._worker_id),
                self._keys.worker(self._worker_id),
                *[self._keys.queue(q) for q in queues],
                *[self._keys.wake(q) for q in queues],
            ]
            self._claim_keys = (queues, keys)
        return self._claim_keys[1], [self._worker_id, " ".join(tokens), self._lease_ms, *queues]

    @staticmethod
    def _claimed(reply: list[bytes], tokens: list[str]) -> list[Claim] | Paused:
        if reply and reply[0] == b"paused":
            return PAUSED
        return [
            Claim(token, reply[i].decode(), reply[i + 1])
            for token, i in zip(tokens, range(0, len(reply), 2), strict=False)
        ]

    def wait(self, timeout: float) -> bool:
        """Block until a producer leaves a wake-up token on one of our queues, or ``timeout``.

        A worker with globs also wakes when a new queue appears; then it returns True
        and the caller re-expands its queue list at once.
        """
        keys = [self._keys.wake(q) for q in self._resolved]
        if self.queues.dynamic:
            keys.append(self._keys.queues_changed)
        if not keys or timeout <= 0:
            return False
        reply = cast("list[bytes] | None", self._redis.blpop(keys, timeout=min(timeout, MAX_BLOCK)))
        return reply is not None and reply[0] == self._keys.queues_changed.encode()
