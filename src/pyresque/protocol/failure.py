"""Failure records in the ``failed`` list, exactly as resque-web reads them (spec section 4).

A record is ``{"failed_at","payload","exception","error","backtrace","worker","queue"}``,
plus ``retried_at`` once retried. Records written by Ruby Resque and php-resque
read back the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from pyresque.exceptions import MalformedPayload
from pyresque.protocol import scripts, strict_json
from pyresque.protocol.backtrace import resque_time
from pyresque.protocol.connection import raw
from pyresque.protocol.failure_sweep import may_hold, needles, sweep
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.workflow import follow_up

#: How many records one LRANGE reads while scanning the list.
_PAGE = 500


def failure_record(
    payload: dict[str, Any] | str,
    exception: str,
    error: str,
    backtrace: list[str],
    worker: str,
    queue: str,
) -> str:
    """A record with resque-web's field set, in Ruby's field order."""
    return dumps(
        {
            "failed_at": resque_time(),
            "payload": payload,
            "exception": exception,
            "error": error,
            "backtrace": backtrace,
            "worker": worker,
            "queue": queue,
        }
    )


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
    """Read, retry and remove failure records (what resque-web's Failed tab does)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def count(self) -> int:
        return int(self._redis.llen(self._keys.failed))

    def list(self, offset: int = 0, limit: int = 20) -> list[Failure]:
        """One page of records, oldest first."""
        raws = self._redis.lrange(self._keys.failed, offset, offset + limit - 1)
        return [Failure.decode(offset + i, raw(item)) for i, item in enumerate(raws)]

    def get(self, index: int) -> Failure | None:
        item = self._redis.lindex(self._keys.failed, index)
        return None if item is None else Failure.decode(index, raw(item))

    def __iter__(self) -> Iterator[Failure]:
        for index, item in self._items():
            yield Failure.decode(index, item)

    def _items(self) -> Iterator[tuple[int, bytes]]:
        """(index, bytes) of every record, oldest first, read a page at a time."""
        offset = 0
        while True:
            page = self._redis.lrange(self._keys.failed, offset, offset + _PAGE - 1)
            yield from enumerate((raw(item) for item in page), offset)
            if len(page) < _PAGE:
                return
            offset += _PAGE

    def requeue(self, index: int) -> bool:
        """Push the job of record ``index`` back onto its queue and mark it retried; False
        if there is no such record (see ``requeue_record`` for records that hold no job)."""
        failure = self.get(index)
        return failure is not None and self.requeue_record(failure)

    def requeue_record(self, failure: Failure) -> bool:
        """Retry a record as it was read: it is matched by index *and* content, so a list
        that changed since cannot make this retry another record (False then).

        Raises ``MalformedPayload`` saying why when the record holds no job to retry."""
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
        keys = [
            self._keys.failed,
            self._keys.queues,
            self._keys.queue(failure.queue),
            self._keys.wake(failure.queue),
            self._keys.queues_changed,
        ]
        if payload.id:
            keys.append(self._keys.status(payload.id, payload.prefix))
        flow = payload.id if payload.id and payload.extra.get("workflow") is True else ""
        if flow:
            keys += [self._keys.wf_jobs, self._keys.wf_batches, self._keys.wf_expiry]
            keys.append(self._keys.wf_outbox)
        args = [
            failure.index,
            failure.raw,
            dumps(item),
            payload.encode(),
            failure.queue,
            waiting_packet() if payload.id else "",
            flow,
        ]
        reply = scripts.run(self._redis, "retry_failed", keys, args)
        if isinstance(reply, list):  # jobs its failure had cancelled wait for it again
            restored = [raw(i).decode("utf-8", "replace") for i in reply[1:]]
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
        args = [failure.index, failure.raw, mark]
        return bool(scripts.run(self._redis, "failed_remove_at", [self._keys.failed], args))

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

        return sweep(self._redis, self._keys, drop, progress)

    def clear(self) -> int:
        """Delete every record; returns how many there were."""
        pipe = self._redis.pipeline()
        pipe.llen(self._keys.failed)
        pipe.delete(self._keys.failed)
        return int(pipe.execute()[0])

    def clear_retried(self) -> int:
        return self.remove_all(retried_only=True)
