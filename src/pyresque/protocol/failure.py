"""Failure records in the ``failed`` list, exactly as resque-web reads them (spec section 4).

A record is ``{"failed_at","payload","exception","error","backtrace","worker","queue"}``,
plus ``retried_at`` once retried. Records written by Ruby Resque and php-resque
read back the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from pyresque.exceptions import MalformedPayload
from pyresque.protocol import scripts, strict_json
from pyresque.protocol.backtrace import resque_time
from pyresque.protocol.connection import raw
from pyresque.protocol.failed_lists import Part, locate, parts, ranges, scan_parts, total
from pyresque.protocol.failure_sweep import Scan, may_hold, needles, scan, sweep
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps
from pyresque.protocol.slots import name_queues
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.workflow import follow_up, retry_sharded

#: How many records one LRANGE reads while scanning the list.
_PAGE = 500


@dataclass
class Failure:
    """One record of the ``failed`` list, as read back."""

    index: int
    raw: bytes
    failed_at: str = ""
    payload: Any = None
    exception: str = ""
    error: str = ""
    backtrace: list[str] = field(default_factory=list)
    worker: str = ""
    queue: str = ""
    retried_at: str | None = None

    @property
    def class_name(self) -> str:
        return str(self.payload.get("class", "")) if isinstance(self.payload, dict) else ""

    @property
    def args(self) -> list[Any]:
        args = self.payload.get("args") if isinstance(self.payload, dict) else None
        return args if isinstance(args, list) else []

    @property
    def parsed(self) -> bool:
        """False for entries that are not failure records (resque-web: "could not be parsed")."""
        return bool(self.failed_at or self.exception)

    @classmethod
    def decode(cls, index: int, raw: bytes) -> Failure:
        """A record as read; never raises (an entry that is not a record is not ``parsed``)."""
        try:
            item = strict_json.loads(raw)
        except strict_json.BadJSON:
            return cls(index, raw)
        if not isinstance(item, dict):
            return cls(index, raw)
        backtrace = item.get("backtrace")
        return cls(
            index=index,
            raw=raw,
            failed_at=str(item.get("failed_at") or ""),
            payload=item.get("payload"),
            exception=str(item.get("exception") or ""),
            error=str(item.get("error") or ""),
            backtrace=[str(line) for line in backtrace] if isinstance(backtrace, list) else [],
            worker=str(item.get("worker") or ""),
            queue=str(item.get("queue") or ""),
            retried_at=str(item["retried_at"]) if item.get("retried_at") else None,
        )

    def matches(
        self, queue: str | None = None, class_name: str | None = None, exception: str | None = None
    ) -> bool:
        return (
            (queue is None or self.queue == queue)
            and (class_name is None or self.class_name == class_name)
            and (exception is None or self.exception == exception)
        )


Progress = Callable[[int], None]


class Failures:
    """Read, retry and remove failure records (what resque-web's Failed tab does).

    On Redis Cluster the records are in a list per queue slot, read as one
    (failed_lists.py): the same indexes, counts and actions over all of them."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        #: The lists as last read (Cluster): where an index read then is, first.
        self._seen: Sequence[Part] = ()

    def parts(self) -> list[Part]:
        """The failed lists, with their lengths (one, ``failed``, on a single Redis)."""
        found = parts(self._redis, self._keys)
        self._seen = found
        return found

    def count(self) -> int:
        if not self._keys.clustered:
            return int(self._redis.llen(self._keys.failed))
        return total(self.parts())

    def list(self, offset: int = 0, limit: int = 20) -> list[Failure]:
        """One page of records, oldest first (a negative ``offset`` counts from the end)."""
        if not self._keys.clustered:
            raws = self._redis.lrange(self._keys.failed, offset, offset + limit - 1)
            return [Failure.decode(offset + i, raw(item)) for i, item in enumerate(raws)]
        page: list[Failure] = []
        for part, first, last in ranges(self.parts(), offset, limit):
            items = self._redis.lrange(part.keys.failed, first, last)
            page += [Failure.decode(part.base + first + i, raw(x)) for i, x in enumerate(items)]
        return page

    def get(self, index: int) -> Failure | None:
        if not self._keys.clustered:
            item = self._redis.lindex(self._keys.failed, index)
            return None if item is None else Failure.decode(index, raw(item))
        found = locate(self.parts(), index)
        if found is None:
            return None
        part, local = found
        item = self._redis.lindex(part.keys.failed, local)
        return None if item is None else Failure.decode(part.base + local, raw(item))

    def scan(
        self,
        pick: Callable[[int, bytes], bool],
        start: int | None = None,
        newest_first: bool = True,
        want: int = 20,
        budget: int = 2000,
    ) -> Scan:
        """``failure_sweep.scan`` of the records (of every list, on Cluster)."""
        if not self._keys.clustered:
            return scan(self._redis, self._keys.failed, pick, start, newest_first, want, budget)
        return scan_parts(self._redis, self.parts(), pick, start, newest_first, want, budget)

    def __iter__(self) -> Iterator[Failure]:
        for index, item in self._items():
            yield Failure.decode(index, item)

    def _items(self) -> Iterator[tuple[int, bytes]]:
        """(index, bytes) of every record, oldest first, read a page at a time."""
        lists = self.parts() if self._keys.clustered else [Part(self._keys, 0, 0)]
        for part in lists:
            offset = 0
            while True:
                page = self._redis.lrange(part.keys.failed, offset, offset + _PAGE - 1)
                yield from enumerate((raw(item) for item in page), part.base + offset)
                if len(page) < _PAGE:
                    break
                offset += _PAGE

    def _at(self, failure: Failure, act: Callable[[Keys, int], bool]) -> bool:
        """``act(slot keys, index in its list)`` on the list ``failure`` was read from,
        as the lists were last read, then (Cluster) as they are now if that found
        nothing: the index is over every list, and one that grew since moves it."""
        if not self._keys.clustered:
            return act(self._keys, failure.index)
        tried: set[tuple[Keys, int]] = set()
        for lists in (self._seen, None):
            found = locate(self.parts() if lists is None else lists, failure.index)
            if found is not None and (found[0].keys, found[1]) not in tried:
                tried.add((found[0].keys, found[1]))
                if act(found[0].keys, found[1]):
                    return True
        return False

    def requeue(self, index: int) -> bool:
        """Push the job of record ``index`` back onto its queue and mark it retried; False
        if there is no such record (see ``requeue_record`` for records that hold no job)."""
        failure = self.get(index)
        return failure is not None and self.requeue_record(failure)

    def requeue_record(self, failure: Failure) -> bool:
        """Retry a record as it was read: it is matched by index *and* content, so a list
        that changed since cannot make this retry another record (False then).

        Raises ``MalformedPayload`` saying why when the record holds no job to retry, or its
        queue's key holds another type (the job could not go there)."""
        why = f"failed job {failure.index} cannot be retried"
        if not failure.parsed:
            raise MalformedPayload(f"{why}: it is not a failure record")
        if not failure.queue:
            raise MalformedPayload(f'{why}: its record names no "queue"')
        try:
            payload = Payload.from_dict(failure.payload)
        except MalformedPayload as exc:
            raise MalformedPayload(f"{why}: {exc}") from None
        payload.extra.pop("attempts", None)  # a manual retry starts afresh
        if payload.queue_time is not None:
            payload.queue_time = time.time()  # queued now, as far as queue age goes
        item = strict_json.loads(failure.raw)
        item["retried_at"] = resque_time()
        retried = dumps(item)
        shard = self._keys.for_queue(failure.queue)  # on Cluster: the queue's slot

        def retry(at: Keys, index: int) -> bool:
            if at != shard:  # Cluster: not in its queue's slot, so not that record
                return False
            return self._requeue_at(shard, index, failure, retried, payload)

        if self._keys.clustered:  # named in the home slot, as a producer names a queue
            name_queues(self._redis, self._keys, [failure.queue])
        return self._at(failure, retry)

    def _requeue_at(
        self, shard: Keys, index: int, failure: Failure, retried: str, payload: Payload
    ) -> bool:
        """retry_failed.lua on record ``index`` of ``shard``'s list."""
        keys = [
            shard.failed,
            shard.queues,
            shard.queue(failure.queue),
            shard.wake(failure.queue),
            shard.queues_changed,
        ]
        if payload.id:
            keys.append(shard.status(payload.id, payload.prefix))
        flow = payload.id if payload.id and payload.extra.get("workflow") is True else ""
        restored: list[str] = []
        if flow and shard.clustered:  # the records' slot first: the job is pushed after
            restored, flow = retry_sharded(self._redis, shard, flow), ""
        if flow:
            keys += [shard.wf_jobs, shard.wf_batches, shard.wf_expiry, shard.wf_outbox]
        args = [
            index,
            failure.raw,
            retried,
            payload.encode(),
            failure.queue,
            waiting_packet() if payload.id else "",
            flow,
        ]
        reply = scripts.run(self._redis, "retry_failed", keys, args)
        if isinstance(reply, (bytes, str)):  # nothing written: a job cannot go there
            found, key = raw(reply).decode(), shard.queue(failure.queue)
            why = f"its queue's key {key} holds a {found}, not a list (left as it is)"
            raise MalformedPayload(f"failed job {failure.index} cannot be retried: {why}")
        if isinstance(reply, list):  # jobs its failure had cancelled wait for it again
            restored = [raw(i).decode("utf-8", "replace") for i in reply[1:]]
        if restored:
            follow_up(self._redis, self._keys, "waiting", restored)
        return bool(reply)

    def requeue_all(
        self,
        queue: str | None = None,
        class_name: str | None = None,
        exception: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Retry every record that matches the filters; returns how many were retried
        (records that hold no job to retry are left as they are)."""
        done = 0
        wanted = needles(queue, class_name, exception)
        for index, item in self._items():
            if may_hold(item, wanted):
                failure = Failure.decode(index, item)
                if failure.matches(queue, class_name, exception) and self._retried(failure):
                    done += 1
            if progress:
                progress(1)
        return done

    def _retried(self, failure: Failure) -> bool:
        try:
            return self.requeue_record(failure)
        except MalformedPayload:
            return False

    def remove(self, index: int) -> bool:
        """Remove record ``index`` (checked by content, so concurrent changes cannot
        misdirect it)."""
        failure = self.get(index)
        return failure is not None and self.remove_record(failure)

    def remove_record(self, failure: Failure) -> bool:
        """Remove a record as it was read: False if it is not at its index any more."""
        mark = f"pyresque:removing:{uuid.uuid4().hex}"

        def remove(at: Keys, index: int) -> bool:
            args = [index, failure.raw, mark]
            return bool(scripts.run(self._redis, "failed_remove_at", [at.failed], args))

        return self._at(failure, remove)

    def remove_all(
        self,
        queue: str | None = None,
        class_name: str | None = None,
        exception: str | None = None,
        retried_only: bool = False,
        progress: Progress | None = None,
    ) -> int:
        """Remove every record that matches the filters, in bounded steps
        (failure_sweep.py); returns how many were removed."""
        wanted = needles(queue, class_name, exception)
        if retried_only:
            wanted.append(b'"retried_at"')

        def drop(item: bytes) -> bool:
            if not may_hold(item, wanted):
                return False
            failure = Failure.decode(0, item)
            return failure.matches(queue, class_name, exception) and (
                not retried_only or failure.retried_at is not None
            )

        return sum(sweep(self._redis, at, drop, progress) for at in self._places())

    def clear(self) -> int:
        """Delete every record; returns how many there were."""
        cleared = 0
        for at in self._places():
            pipe = self._redis.pipeline(transaction=True)
            pipe.llen(at.failed)
            pipe.delete(at.failed)
            cleared += int(pipe.execute()[0])
        return cleared

    def _places(self) -> Sequence[Keys]:
        """The slots of the failed lists (the namespace's keys on a single Redis)."""
        return [part.keys for part in self.parts()] if self._keys.clustered else [self._keys]

    def clear_retried(self) -> int:
        return self.remove_all(retried_only=True)
