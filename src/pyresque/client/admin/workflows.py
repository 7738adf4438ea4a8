"""A batch's live counts (``Resque.batch``, ``pyresque batch ID``, the dashboard) and a
workflow job's state, read from the workflow records (lib_workflow.lua). Anyone may
write Redis: a record that is not one reads as none."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from pyresque.client.admin.base import Namespace
from pyresque.protocol import strict_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.workflow import settle

_COUNTS = ("total", "succeeded", "failed", "cancelled", "created")
_IDS = ("on_success", "on_complete", "parent")
_STATES = ("waiting", "queued", "ok", "failed", "cancelled")


@dataclass(frozen=True)
class BatchInfo:
    """A group's counts: ``pending`` members have not ended yet (a failed member that is
    retried is pending again). ``on_success`` / ``on_complete`` are the callbacks' job
    ids, ``parent`` the enclosing group's batch id, ``created`` epoch seconds."""

    id: str
    name: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    created: int
    on_success: str | None = None
    on_complete: str | None = None
    parent: str | None = None

    @property
    def pending(self) -> int:
        return max(self.total - self.succeeded - self.failed - self.cancelled, 0)

    @property
    def complete(self) -> bool:
        """Every member ended (``on_complete`` was released)."""
        return self.pending == 0

    @property
    def success(self) -> bool:
        """Every member succeeded (``on_success`` was released)."""
        return self.succeeded == self.total

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the CLI and the dashboard: the fields, pending, complete, success."""
        return {
            **asdict(self),
            "pending": self.pending,
            "complete": self.complete,
            "success": self.success,
        }

    @classmethod
    def decode(cls, batch_id: str, raw: bytes | str | None) -> BatchInfo | None:
        """The batch in ``raw`` (its ``wf:batches`` field), or None when it is not one."""
        record = _object(raw)
        if record is None:
            return None
        counts = [record.get(name, 0) for name in _COUNTS]
        ids = [record.get(name) for name in _IDS]
        name = record.get("name", "")
        if not (
            all(_count(value) for value in counts)
            and all(value is None or isinstance(value, str) for value in ids)
            and isinstance(name, str)
        ):
            return None
        total, succeeded, failed, cancelled, created = counts
        return cls(batch_id, name, total, succeeded, failed, cancelled, created, *ids)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def batch(resque: Namespace, batch_id: str) -> BatchInfo | None:
    """Batch ``batch_id``'s counts (``Resque.batch``, ``pyresque batch``), or None."""
    return BatchInfo.decode(batch_id, _field(resque.redis, resque.keys.wf_batches, batch_id))


def recent(resque: Namespace, limit: int = 100) -> list[BatchInfo]:
    """Up to ``limit`` batches, the newest first, for the dashboard. It reads at most
    ``limit`` * 10 records (HSCAN): a namespace keeps a batch 7 days after it ended."""
    found: list[BatchInfo] = []
    try:
        scan = resque.redis.hscan_iter(resque.keys.wf_batches, count=max(limit, 10))
        for index, (name, raw) in enumerate(scan):
            info = BatchInfo.decode(name.decode("utf-8", "replace"), raw)
            if info is not None:
                found.append(info)
            if index + 1 >= limit * 10:
                break
    except redis.ResponseError:  # not a hash
        return []
    found.sort(key=lambda info: info.created, reverse=True)
    return found[:limit]


def _field(client: redis.Redis, key: str, name: str) -> bytes | None:
    """A hash's field; None also when the key is not a hash (anyone may write Redis)."""
    try:
        return cast("bytes | None", client.hget(key, name))
    except redis.ResponseError:
        return None


def state_of(raw: bytes | str | None) -> str | None:
    """The state in a job's workflow record, or None when it is not one."""
    record = _object(raw)
    state = record.get("s") if record is not None else None
    return state if state in _STATES else None


def _object(raw: bytes | str | None) -> dict[str, Any] | None:
    """The JSON object in ``raw``; None for anything else (anyone may write Redis)."""
    if raw is None:
        return None
    try:
        record = strict_json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def state(resque: Namespace, job_id: str) -> str | None:
    """Job ``job_id``'s workflow state (``Resque.workflow_state``), or None."""
    return state_of(_field(resque.redis, resque.keys.wf_jobs, job_id))


def cancel(resque: Namespace, job_id: str, expected: str) -> bool:
    """Cancel workflow job ``job_id`` in state ``expected``: ``waiting`` (for its
    dependencies), or ``queued`` (the caller took it off its queue); False when it is
    not one in that state (protocol/workflow.py's ``settle``)."""
    return settle(resque.redis, resque.keys, job_id, expected, "cancelled")


def waiting_slot(resque: Namespace, job_id: str) -> Keys:
    """Where a job cancelled while it waited has its status and result: on Cluster, the
    slot of the queue its record names (it keeps it: a retry may release it); else, and
    for a record that names none, the namespace's keys."""
    record = _object(_field(resque.redis, resque.keys.wf_jobs, job_id)) or {}
    queue = record.get("q")
    return resque.keys.for_queue(queue) if isinstance(queue, str) else resque.keys
