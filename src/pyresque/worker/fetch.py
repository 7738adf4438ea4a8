"""Fetching jobs: claiming the next job, waiting for work (the queues: queue_list.py).

A claim is one Lua call (claim.lua) that pops the next job in priority order
and records it as in flight in the same step. An idle worker waits for a
wake-up token that pyresque producers leave (enqueue.lua), so it starts a job
within milliseconds without polling; jobs pushed by Ruby or PHP producers,
which leave no token, are found by the claim that follows each wait timeout.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from pyresque.middleware.work import finish_keys
from pyresque.protocol import foreign_queues
from pyresque.protocol.claim import Claim
from pyresque.protocol.connection import MAX_BLOCK
from pyresque.protocol.durability import Replicas, run_durably
from pyresque.protocol.keys import Keys
from pyresque.worker import sharded
from pyresque.worker.queue_list import QueueList, Resolution
from pyresque.worker.wake_wait import WakeWait

log = logging.getLogger("pyresque.worker")

#: Queues a claim call tries first. A call ships the keys of the queues it tries, so
#: a claim costs the same whether the worker watches 1 queue or 10,000 (``*`` over
#: per-tenant queues) as long as the job is among the first ones. When they are all
#: empty, the next call tries the following ones, each call four times as many as the
#: one before, up to CHUNK_MAX, and fewer when their names pass CHUNK_BYTES (one queue
#: at least): a call costs Redis ~0.8 µs per queue it pops from (a script's call of a
#: command) and ~1.2 ns per byte of its keys and arguments (copied into Lua), and over
#: 256 queues it passed 1 ms now and then on a loaded machine (2,048: ~5 ms). Past the
#: first call, a call is made only for queues ``EXISTS`` found a job in (``queued_from``):
#: an idle look over 10,000 queues is ~10 of those, not ~160 calls. As in Ruby Resque,
#: which pops queue after queue, a job pushed onto a queue already tried waits for the
#: next claim.
CHUNK = 8
CHUNK_MAX = 64
#: The bytes of queue names a call takes at most; each name is in it up to four times
#: (its queue, its landing list and its wake list's keys, and an argument).
CHUNK_BYTES = 4096
#: Queues, and bytes of their names, one ``EXISTS`` looks at past an empty call's
#: (~0.1 µs a key in Redis: ~0.1 ms).
SPAN = 1024
SPAN_BYTES = 65536


def chunk_end(queues: list[str], start: int, size: int, most: int = CHUNK_BYTES) -> int:
    """The end of the queues a claim call tries from ``start``: ``size`` of them, fewer
    when their names pass ``most`` bytes, and one at least."""
    end, total = start, 0
    for queue in queues[start : start + size]:
        total += len(queue.encode())
        if total > most and end > start:
            break
        end += 1
    return end


class Paused:
    """Returned by ``Fetcher.claim`` when no job may be claimed now."""

    def __init__(self, why: str) -> None:
        self.why = why


#: The worker's lease had expired in Redis (it stalled): none until the heartbeat renews it.
LEASE_EXPIRED = Paused("lease")


class QueuesChanged(Exception):
    """A finish call wrote nothing because a queue that waiting workflow jobs go to was
    added since its plan read them (lib_finish.lua replied -1): plan it again."""


class ClaimNotReplicated(redis.exceptions.ConnectionError):
    """The durability policy's replicas did not acknowledge a claim in time: the jobs
    are in flight on the master, and must not start (a failover could hand them to
    another worker). Handled as an outage: the processor gives them back and backs off."""

    def __init__(self) -> None:
        super().__init__("claims were not replicated in time (durability policy)")


class Fetcher:
    """Claims jobs for one worker and waits for new ones."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        worker_id: str,
        queues: QueueList | Resolution,
        durability: Replicas | None = None,
        waits: WakeWait | None = None,
    ) -> None:
        self._redis = client
        # The worker's, shared by its processors (their groups' threads need a pooled client).
        self._waits = waits or WakeWait(client, keys.prefix, bool(keys.clustered))
        self._durability = durability  # claims and finishes wait for replicas
        self._unreplicated = False  # a finish's claims were not replicated: say so next
        self._keys = keys
        self._worker_id = worker_id
        # The queues resolved, shared by the worker's processors (or this fetcher's own).
        self._shared = queues if isinstance(queues, Resolution) else Resolution(queues)
        self.queues = self._shared.queues
        self._head = [keys.leases, keys.inflight(worker_id)]
        # The keys of the resolved queues and of their wake lists, built once per list.
        self._built: list[str] | None = None
        self._queue_keys: list[str] = []
        self._wake_keys: list[str] = []
        self._wait_keys: list[str] = []  # what a wait waits on: the wake lists (and queues-changed)
        self._woken = False  # the last wait took a wake-up token: the next claim passes it on
        self._finish_keys: dict[str, list[str]] = {}  # by the prefix of a queue's slot

    @property
    def resolved(self) -> list[str]:
        """The queues served now, globs expanded, in priority order."""
        return self._shared.resolved

    def refresh(self) -> list[str]:
        """Re-expand globs against the queues that exist now, at most once a second for
        the worker (queue_list.py), whichever of its processors asks."""
        return self._shared.refresh(self._redis, self._keys)

    def claim(self, tokens: list[str]) -> list[Claim] | Paused:
        """Claim the next jobs in priority order, one per token (the first token's job
        is the first in line); fewer, or none, when the queues run out."""
        if self._unreplicated:  # from the last finish: its claims are to be given back
            self._unreplicated = False
            raise ClaimNotReplicated()
        return self._claim_from(0, CHUNK, tokens, [], self.took_wake())

    def _claim_from(
        self, start: int, size: int, tokens: list[str], got: list[Claim], woken: bool
    ) -> list[Claim] | Paused:
        """Add to ``got`` the jobs claimed for ``tokens`` from the queues from ``start`` on,
        ``size`` of them in the first call (CHUNK); on Cluster, a call per queue, each
        in its queue's slot (sharded.py). Past the first call, only for queues EXISTS
        found a job in (``queued_from``): claim.lua carries the worker id (in an
        argument and the in-flight hash's key), which costs Redis ~1.2 ns a byte (~300
        µs for an id of 10,000 queues) each call, and ``EXISTS`` ~0.1 µs a queue. A
        woken claim calls it in any case: it deletes the empty queues' wake-up tokens."""
        while tokens and start < len(self.resolved):
            clustered = self._keys.clustered
            end = start + 1 if clustered else chunk_end(self.resolved, start, size)
            if start > 0 and not woken:
                start, end = self.queued_from(start, end)
                if start == end:
                    break
            if clustered:
                keys, args = sharded.claim_call(
                    self._keys, self._worker_id, tokens, self.resolved[start], woken
                )
            else:
                keys, args = self._claim_call(tokens, start, end, woken)
            start, size = end, min(size * 4, CHUNK_MAX)
            reply, durable = run_durably(self._redis, "claim", keys, args, self._durability)
            claimed = self._replicated(self._claimed(reply, tokens), durable, 0)
            if self._unreplicated:
                self._unreplicated = False
                raise ClaimNotReplicated()
            if isinstance(claimed, Paused):
                return got or claimed  # jobs claimed already are ours: run them first
            got += claimed
            tokens = tokens[len(claimed) :]
        return got

    def finish(
        self, keys: list[str], args: list[Any], next_tokens: list[str]
    ) -> tuple[int, list[Claim] | Paused]:
        """Record how a job ended (finish.lua) and claim the next jobs, one per token, in
        the same round trip. Returns (finish's reply, next claims): 0 when the job had
        been recovered from us (fenced), 1 when recorded, 2 when ``worker:<id>`` was
        deleted too (lib_finish.lua). Raises ``QueuesChanged`` when the finish wrote
        nothing (and nothing was claimed): plan it again."""
        if next_tokens and self._keys.clustered:
            return self._finish_sharded(keys, args, next_tokens)
        if not next_tokens:
            recorded, durable = run_durably(self._redis, "finish", keys, args, self._durability)
            if recorded < 0:
                raise QueuesChanged
            return int(recorded), self._replicated([], durable, int(recorded))
        woken = self.took_wake()
        end = chunk_end(self.resolved, 0, CHUNK)
        claim_keys, claim_args = self._claim_call(next_tokens, 0, end, woken)
        recorded, claimed = self._finish_claim(keys, args, claim_keys, claim_args, next_tokens)
        if isinstance(claimed, Paused):
            return recorded, claimed
        rest = next_tokens[len(claimed) :]
        return recorded, self._claim_from(end, CHUNK * 4, rest, claimed, woken)

    def _finish_sharded(
        self, keys: list[str], args: list[Any], next_tokens: list[str]
    ) -> tuple[int, list[Claim] | Paused]:
        """``finish`` on Cluster: the finish and the claim from the first queue in one
        call when that queue is in the finished job's slot (a worker of one queue spends
        one round trip per job), else the finish, then claims queue by queue."""
        woken = self.took_wake()
        first = self.resolved[0] if self.resolved else ""
        if first and keys[0] == self._keys.for_queue(first).inflight(self._worker_id):
            claim_keys, claim_args = sharded.claim_call(
                self._keys, self._worker_id, next_tokens, first, woken
            )
            recorded, claimed = self._finish_claim(keys, args, claim_keys, claim_args, next_tokens)
            # Claims not replicated hold these tokens in this slot: another slot's claim
            # must not take them too (the next ``claim`` gives them back).
            if isinstance(claimed, Paused) or self._unreplicated:
                return recorded, claimed
            return recorded, self._claim_from(1, CHUNK, next_tokens[len(claimed) :], claimed, woken)
        finished, durable = run_durably(self._redis, "finish", keys, args, self._durability)
        if finished < 0:
            raise QueuesChanged
        self._replicated([], durable, int(finished))
        return int(finished), self._claim_from(0, CHUNK, next_tokens, [], woken)

    def _finish_claim(
        self,
        keys: list[str],
        args: list[Any],
        claim_keys: list[str],
        claim_args: list[Any],
        next_tokens: list[str],
    ) -> tuple[int, list[Claim] | Paused]:
        """finish_claim.lua: (finish's reply, the claims)."""
        (recorded, reply), durable = run_durably(
            self._redis,
            "finish_claim",
            keys + claim_keys,
            [len(keys), *args, *claim_args],
            self._durability,
        )
        if recorded < 0:
            raise QueuesChanged
        return int(recorded), self._replicated(
            self._claimed(reply, next_tokens), durable, int(recorded)
        )

    def finish_keys(self, queue: str) -> tuple[Keys, list[str]]:
        """The keys a job of ``queue`` finishes with (on Cluster its queue's slot's) and
        finish.lua's first three KEYS there, built once per slot."""
        shard = self._keys.for_queue(queue)
        known = self._finish_keys.get(shard.prefix)
        if known is None:
            known = self._finish_keys[shard.prefix] = finish_keys(shard, self._worker_id)
        return shard, known

    def _replicated(
        self, claims: list[Claim] | Paused, durable: bool, recorded: int
    ) -> list[Claim] | Paused:
        """The claims of a call, if it was as durable as asked, else none: they stay in
        flight, and the next ``claim`` raises ``ClaimNotReplicated`` (the processor
        gives them back then). A finish that may be lost at a failover is logged."""
        if durable:
            return claims
        if recorded:
            log.warning(
                "the end of a job was not replicated in time (durability policy): if "
                "the master fails now, the job runs again"
            )
        if isinstance(claims, list) and claims:
            self._unreplicated = True
            return []
        return claims

    def took_wake(self) -> bool:
        woken, self._woken = self._woken, False
        return woken

    def _claim_call(
        self, tokens: list[str], start: int, end: int, woken: bool
    ) -> tuple[list[str], list[Any]]:
        """claim.lua's KEYS and ARGV for the queues from ``start`` to ``end``."""
        queues = self._with_keys()
        keys = [*self._head, *self._queue_keys[start:end]]
        if woken:
            keys += self._wake_keys[start:end]
        return keys, [self._worker_id, " ".join(tokens), "1" if woken else "", *queues[start:end]]

    def queued_from(self, start: int, end: int) -> tuple[int, int]:
        """The queues a claim call that would try those from ``start`` to ``end`` should
        try: those, if ``EXISTS`` counts one (a list exists while it holds a job; a key
        of another type counts too, and the call skips it and names it), else the first following
        CHUNK_MAX (one on Cluster: a call's keys share a slot) of which it counts one,
        looked for SPAN at a time; an empty range at the end when none does. A job
        pushed onto a queue just passed waits for the next claim, as in any call."""
        queues, exists = self._with_keys(), self._redis.exists
        keys = self._queue_keys
        if end >= len(keys) or exists(*keys[start:end]):
            return start, end  # (the last queues: the call itself looks, in one round trip)
        start = end
        while start < len(keys):
            if self._keys.clustered:
                if exists(keys[start]):
                    return start, start + 1
                start += 1
                continue
            span = chunk_end(queues, start, SPAN, SPAN_BYTES)
            if exists(*keys[start:span]):
                while start < span:  # the first call's worth of it that holds the job
                    end = chunk_end(queues, start, CHUNK_MAX)
                    if exists(*keys[start:end]):
                        return start, end
                    start = end
            start = span
        return start, start

    def _with_keys(self) -> list[str]:
        """The resolved queues, their keys built (again only when the queues change)."""
        queues = self.resolved
        if self._built is not queues:
            self._queue_keys = [self._keys.queue(q) for q in queues]
            self._wake_keys = [self._keys.wake(q) for q in queues]
            # queues-changed first: of the groups waited on whatever their number (wake_wait.py).
            changed = [self._keys.queues_changed] if self.queues.dynamic else []
            self._wait_keys = changed + self._wake_keys
            self._built = queues
        return queues

    def _claimed(self, reply: list[Any], tokens: list[str]) -> list[Claim] | Paused:
        """A claim.lua reply's claims; the queues it skipped, which hold another type,
        are said (foreign_queues.py)."""
        reply = foreign_queues.named(reply, self._keys.queue)
        if reply and reply[0] == b"lease":
            return LEASE_EXPIRED
        return [
            Claim(token, reply[i].decode(), reply[i + 1])
            for token, i in zip(tokens, range(0, len(reply), 2), strict=False)
        ]

    def wait(self, timeout: float) -> bool:
        """Block until a producer leaves a wake-up token on one of our queues, or ``timeout``.

        A worker with globs also wakes when a new queue appears; then it returns True,
        and the next ``refresh`` re-expands its queue list at once.
        """
        self._with_keys()
        if not self._wait_keys or timeout <= 0:
            return False
        reply = self._waits.wait(self._redis, self._wait_keys, min(timeout, MAX_BLOCK))
        if reply is None:
            return False
        if reply[0] == self._keys.queues_changed.encode():
            self._shared.stale()  # the next refresh, of any processor, reads the set
            return True
        self._woken = True
        return False
