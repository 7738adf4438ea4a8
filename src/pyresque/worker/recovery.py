"""Leases, heartbeats and crash recovery: why no job is lost when a worker dies.

Every claimed job has an in-flight record owned by its worker (claim.lua), and
every worker holds a lease in the ``pyresque:leases`` sorted set that its
heartbeat (heartbeat.py) renews once a second. When a worker dies, its lease expires; the
next heartbeat of *any* live worker, on any host, reports it, and that worker
puts the dead one's jobs back at the head of their queues (recover.lua), with no
central reaper. A job that keeps killing its workers is a poison job: to ``failed``.

Ruby and PHP workers have no lease. They are pruned the Resque way: on the same
host when their pid is gone, elsewhere when their Ruby heartbeat is older than
Ruby's prune interval; a job they were running goes to ``failed`` as a DirtyExit.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timezone

import redis

from pyresque.exceptions import MalformedPayload
from pyresque.jobs.job import Registry
from pyresque.jobs.payload_fields import check_fields
from pyresque.protocol import foreign_queues, scripts, strict_json
from pyresque.protocol.connection import raw, text
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import landing_key, read_lists, registry_size
from pyresque.protocol.payload import Payload
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.unique_release import in_call, release_apart
from pyresque.protocol.workflow import apply_reports, reports_key, settle
from pyresque.protocol.workflow_foreign import drain_outbox
from pyresque.worker import foreign_prune, peer_prune
from pyresque.worker.foreign_prune import worker_keys

log = logging.getLogger("pyresque.recovery")


class Recovery:
    """Puts back the jobs of dead workers and unregisters them."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        registry: Registry,
        max_crashes: int = 3,
        recoverer: str = "",
    ) -> None:
        self._redis = client
        self._keys = keys
        self._registry = registry
        self.max_crashes = max_crashes
        self._recoverer = recoverer

    def on(self, keys: Keys) -> Recovery:
        """A recovery of the jobs under ``keys`` (on Cluster, one queue's slot)."""
        clone = copy.copy(self)
        clone._keys = keys
        return clone

    def recover_worker(self, worker_id: str) -> int:
        """Recover every in-flight job of a worker whose lease expired; returns how many.
        Each record on its own: one that cannot be recovered never stops the others."""
        if not peer_prune.fence(self._redis, self._keys, worker_id):
            return 0  # a Ruby worker may be pruning it right now: at a later beat
        entries = self._redis.hgetall(self._keys.inflight(worker_id))
        named = registry_size(self._redis, self._keys, worker_id)  # before the lists
        lists = read_lists(self._redis, self._keys, worker_id)
        landed = [item for _, _, items in lists for item in items]
        try:
            failed = peer_prune.failed_by_peer(self._redis, self._keys, worker_id, entries, landed)
        except redis.exceptions.RedisError:
            raise
        except Exception:  # a bug: requeue them all (nothing lost) rather than none
            log.exception("could not look for a Resque worker's prune of %s", worker_id)
            failed = set()
        moved = 0
        for token, record in entries.items():
            try:
                # The token as read: hostile bytes that are not UTF-8 still name the field.
                moved += self.give_back(
                    worker_id, raw(token), raw(record), crashed=True, failed=raw(token) in failed
                )
            except redis.exceptions.RedisError:
                raise
            except Exception:  # a bug: log it, recover the others, try again next beat
                log.exception("could not recover job %r of dead worker %s", token, worker_id)
        dropped = [item for i, item in enumerate(landed) if b"landed:%d" % i in failed]
        moved += self.give_back_landing(worker_id, crashed=True, dropped=dropped, lists=lists)
        if self._keys.clustered:  # workflow ends it recorded and died before applying
            apply_reports(self._redis, self._keys, self._keys, worker_id)
        reap = worker_keys(self._keys, worker_id, [key for key, _, _ in lists])
        reaped = scripts.run(
            self._redis, "reap", reap, [worker_id, "0", "", "", len(reap) - 12, named]
        )
        if reaped:
            log.warning("unregistered dead worker %s", worker_id)
        return moved

    def give_back_orphans(
        self, worker_id: str, held: set[str], crashed: bool = False, landing: bool = False
    ) -> int:
        """Give back the worker's in-flight jobs whose tokens no processor holds (as
        crashes if they ``crashed`` the worker), and with ``landing`` the jobs on its
        landing list (no processor is landing or adopting one)."""
        done = self.give_back_landing(worker_id, crashed, owner=True) if landing else 0
        for token, record in self._redis.hgetall(self._keys.inflight(worker_id)).items():
            # Read as written: a foreign token that is not UTF-8 is no claim of ours.
            if raw(token).decode("utf-8", "replace") not in held:
                done += self.give_back(worker_id, raw(token), raw(record), crashed, owner=True)
        return done

    def give_back(
        self,
        worker_id: str,
        token: str | bytes,
        record: bytes,
        crashed: bool,
        failed: bool = False,
        owner: bool = False,
    ) -> int:
        """Put one in-flight job back on its queue (or in ``failed`` if it is poison, or if
        the record cannot be read: then the record's raw bytes go there, as a
        ``MalformedPayload`` saying what is wrong).

        ``crashed`` counts the delivery as an attempt; a worker that gives back its own
        job on shutdown passes False, and skips the lease check. ``failed``: a peer's
        pruning already recorded it in ``failed`` (peer_prune.py), so it is only released.
        ``owner`` with ``crashed``: a live worker gives back a job that crashed it (no
        lease check).
        """
        try:
            queue, raw = read_record(record)
        except MalformedPayload as exc:
            return self._fail_record(worker_id, token, record, str(exc), crashed, owner)
        where = (token, record, "")
        return self._give_back(worker_id, where, queue, raw, crashed, failed, owner)

    def give_back_landing(
        self,
        worker_id: str,
        crashed: bool,
        owner: bool = False,
        dropped: list[bytes] | None = None,
        lists: list[tuple[str, str, list[bytes]]] | None = None,
    ) -> int:
        """Put back the jobs on a worker's landing lists (landing.py; ``lists`` as
        ``read_lists`` read them, or read now), the oldest first in line; ``crashed`` and
        ``owner`` as for ``give_back``; those in ``dropped`` (a peer's prune failed them)
        are only taken off."""
        done = 0
        dropped = list(dropped or ())
        if lists is None:
            lists = read_lists(self._redis, self._keys, worker_id)
        for key, queue, items in lists:
            for item in reversed(items):  # each to the head: the last first
                failed = item in dropped
                if failed:
                    dropped.remove(item)
                done += self.give_back_landed(
                    worker_id, queue, item, crashed, owner, failed=failed, key=key
                )
        return done

    def give_back_landed(
        self,
        worker_id: str,
        queue: str,
        payload: bytes,
        crashed: bool,
        owner: bool = False,
        failed: bool = False,
        key: str = "",
    ) -> int:
        """Put one job of a worker's landing list (``key``, by default ``queue``'s) back at
        the head of ``queue`` (only take it off when a peer's prune ``failed`` it)."""
        where = (b"", payload, key or landing_key(self._keys, worker_id, queue))
        return self._give_back(worker_id, where, queue, payload, crashed, failed, owner)

    def _give_back(
        self,
        worker_id: str,
        where: tuple[str | bytes, bytes, str],
        queue: str,
        raw: bytes,
        crashed: bool,
        failed: bool,
        owner: bool,
        foreign: str = "",
    ) -> int:
        """``give_back``'s work once the job's queue and payload are known; ``where``: the
        claim token and the record as read, and its landing list if it is on one;
        ``foreign``: the type its queue's key holds instead of a list (to ``failed``)."""
        token, record, landed = where
        payload = _payload_or_none(raw)
        item: bytes | str
        action, item = "requeue", raw  # bytes as they were, even bytes that are not UTF-8
        if crashed and payload is not None:
            # A crash is an attempt (as a retry is), and it counts towards the poison
            # limit on its own, so earlier retries do not make a job poison sooner.
            payload.extra["attempts"] = payload.attempts + 1
            payload.extra["crashes"] = payload.crashes + 1
            item = payload.encode()
            if payload.crashes >= self.max_crashes or self._fails_on_crash(payload):
                action, item = "fail", self._poison_record(payload, worker_id, queue)
        if foreign:  # the user's key cannot take it back (foreign_queues.py): kept in failed
            error = foreign_queues.refused(self._keys.for_queue(queue).queue(queue), foreign)
            shown = payload.to_dict() if payload else raw.decode("utf-8", "backslashreplace")
            item = failure_record(shown, foreign_queues.FAILURE, error, [], worker_id, queue)
            action = "fail"
        if failed:
            action, item = "drop", ""
        shard = self._keys.for_queue(queue)  # on Cluster, the job's queue's slot
        status = shard.status(payload.id, payload.prefix) if payload and payload.id else None
        done = action in ("fail", "drop")
        lock = UniqueLock.of(payload) if done and payload is not None else None
        if lock is not None and not lock.released_at_end:
            lock = None  # only a job that is done (poison, failed by a peer) frees its lock
        flow_id = ""  # a workflow job that ends here
        if done and payload and payload.extra.get("workflow") is True:
            flow_id = payload.id or ""
        how = (action, queue, crashed, status, lock, owner, landed, flow_id)
        moved = self._move(worker_id, token, record, item, *how)
        if isinstance(moved, str):  # its queue's key holds another type: nothing written
            return self._give_back(worker_id, where, queue, raw, crashed, failed, owner, moved)
        if not moved:
            return 0
        if flow_id and self._keys.clustered:  # the move recorded it as the worker's end
            apply_reports(self._redis, self._keys, shard, worker_id, [flow_id])
        elif flow_id:
            # Its dependents and batches: just after the move (which recorded this
            # follow-up in the outbox), not in it: docs/workflows.md.
            settle(self._redis, self._keys, flow_id, "queued", "failed")
        job = payload.id if payload and payload.id else (payload.class_name if payload else "?")
        if action == "drop":
            log.warning(
                "job %s of dead worker %s is not requeued: a Resque worker that pruned %s "
                "already moved it to failed",
                job,
                worker_id,
                worker_id,
            )
        elif foreign:
            log.error("job %s of worker %s failed: %s", job, worker_id, error)
        elif action == "fail":
            log.error(
                "job %s failed: it was running when worker %s died %d times (poison)",
                job,
                worker_id,
                payload.crashes if payload else 0,
            )
        elif crashed:
            whose = "crashed" if owner else "dead"
            log.warning(
                "recovered job %s of %s worker %s back to queue %s", job, whose, worker_id, queue
            )
        return 1

    def _fail_record(
        self,
        worker_id: str,
        token: str | bytes,
        record: bytes,
        problem: str,
        crashed: bool,
        owner: bool = False,
    ) -> int:
        """Move an in-flight record that cannot be read to ``failed``, its bytes kept."""
        shown = record.decode("utf-8", "backslashreplace")
        item = failure_record(shown, "pyresque.MalformedPayload", problem, [], worker_id, "")
        if not self._move(worker_id, token, record, item, "fail", "", crashed, None, None, owner):
            return 0
        log.error("in-flight job %r of worker %s moved to failed: %s", token, worker_id, problem)
        return 1

    def _move(
        self,
        worker_id: str,
        token: str | bytes,
        record: bytes,
        item: bytes | str,
        action: str,
        queue: str,
        crashed: bool,
        status: str | None,
        lock: UniqueLock | None = None,
        owner: bool = False,
        landed: str = "",
        flow_id: str = "",
    ) -> bool | str:
        """recover.lua: move one in-flight job (or one on the ``landed`` list), if it is
        still there and its owner dead; ``flow_id``: a workflow job's id, whose settle it
        records."""
        failing = action == "fail"
        # On Cluster, the queue's slot (an unreadable record names none: this one's).
        at = self._keys.for_queue(queue) if queue else self._keys
        keys = [
            at.leases,
            landed or at.inflight(worker_id),
            at.failed if failing else at.queue(queue),
            at.stat("failed") if failing else at.recovered,
            at.queues,
            at.wake(queue),
            at.queues_changed,
        ]
        if status is not None:
            keys.append(status)
        mode = ("2" if owner else "0") if crashed else "1"  # recover.lua's ARGV[7]
        args = [worker_id, token, record, item, action, queue, mode, "", "1" if status else ""]
        args += ["1" if landed else "", flow_id]
        if flow_id and self._keys.clustered:  # recorded in the worker's reports instead
            keys.append(reports_key(at, worker_id))
            args.append("report")
        elif flow_id:
            keys.append(self._keys.wf_outbox)
        args[7] = in_call(self._keys, lock, keys)  # its key last, when the call releases it
        moved = scripts.run(self._redis, "recover", keys, args)
        if isinstance(moved, (bytes, str)):  # the type its queue's key holds: nothing written
            return text(moved)
        if moved:
            release_apart(self._redis, self._keys, [lock])
        return bool(moved)

    def drain_outbox(self, older_than_ms: int) -> int:
        """Do the workflow follow-ups that killed workers left (protocol/workflow.py)."""
        return drain_outbox(self._redis, self._keys, older_than_ms)

    def _fails_on_crash(self, payload: Payload) -> bool:
        if payload.class_name not in self._registry:
            return False
        return self._registry.get(payload.class_name).on_crash == "fail"

    def _poison_record(self, payload: Payload, worker_id: str, queue: str) -> str:
        crashes = payload.crashes
        reason = (
            f"the job was running when its worker died {crashes} time(s) "
            f"(last: {worker_id}); it was not run again"
        )
        name = "pyresque.PoisonJob" if crashes >= self.max_crashes else "pyresque.DirtyExit"
        return failure_record(payload.to_dict(), name, reason, [], worker_id, queue)

    # --- Ruby and PHP workers --------------------------------------------------

    def prune_foreign(self) -> int:
        """Resque's pruning, for workers without a pyresque lease (foreign_prune.py)."""
        return foreign_prune.prune_foreign(self._redis, self._keys, self._recoverer)


def read_record(record: bytes) -> tuple[str, bytes]:
    """The queue name and payload bytes of an in-flight record (claim.lua writes
    ``{"queue","payload","claimed_at"}``); ``MalformedPayload`` if it is not one."""
    try:
        record.decode("utf-8")
    except UnicodeDecodeError:
        # cjson copies a payload's bytes into the record as they are, even bytes that
        # are not UTF-8: those are read back as they were (surrogateescape).
        if strict_json.depth(record) > strict_json.MAX_DEPTH:
            raise MalformedPayload(
                f"in-flight record nested deeper than {strict_json.MAX_DEPTH} levels"
            ) from None
        try:
            entry = json.loads(record.decode("utf-8", "surrogateescape"))
        except ValueError as exc:
            raise MalformedPayload(f"in-flight record is not valid JSON: {exc}") from None
    else:
        try:
            entry = strict_json.loads(record)
        except strict_json.BadJSON as exc:
            raise MalformedPayload(f"in-flight record: {exc}") from None
    if not isinstance(entry, dict):
        kind = type(entry).__name__
        raise MalformedPayload(f"in-flight record must be a JSON object, got {kind}")
    queue, payload = entry.get("queue"), entry.get("payload")
    if not isinstance(queue, str) or not queue:
        raise MalformedPayload('in-flight record has no "queue" naming the job\'s queue')
    if not isinstance(payload, str):
        raise MalformedPayload('in-flight record has no "payload" string')
    return queue, payload.encode("utf-8", "surrogateescape")


def _payload_or_none(raw: bytes | str) -> Payload | None:
    """The payload, or None when a worker would refuse it: it then goes back to its queue
    as it was, for the worker that takes it to fail it, saying why."""
    try:
        payload = Payload.decode(raw)
        check_fields(payload)
        return payload
    except MalformedPayload:
        return None


def started_text() -> str:
    """The worker start time, ISO 8601 with offset (Ruby and php-resque accept it)."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
