"""A unique job's lock as it travels in a payload and names its Redis key.

Everything that moves a job (the producer, the delayed queue, removal, recovery, the
worker's finish step) reads the lock from the payload here and releases it in its own
Lua script, only while this token holds it. On Redis Cluster the lock is in a slot
of its own (keys.py), so those scripts cannot reach it: each releases it just after
its call instead (unique_release.py). The policy users declare is jobs/unique.py; when the
lock is taken and released is middleware/unique.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyresque.protocol import strict_json
from pyresque.protocol.payload import Payload

UNTIL = ("queued", "started", "finished", "ttl")
#: Bytes in every payload that carries a lock: a quick test before decoding one.
MARK = b'"unique"'


@dataclass(frozen=True)
class UniqueLock:
    """The lock one job holds: ``digest`` names it, ``token`` proves ownership."""

    digest: str
    until: str
    token: str
    ttl_ms: int = 0

    def stamp(self, payload: Payload) -> None:
        """Record the lock in the payload, so it travels with the job."""
        payload.extra["unique"] = {"key": self.digest, "until": self.until, "token": self.token}

    @property
    def released_at_end(self) -> bool:
        """Whether the job's end (finished, finally failed, poison) releases the lock."""
        return self.until == "finished"

    @classmethod
    def of(cls, item: Payload | dict[str, Any]) -> UniqueLock | None:
        """The lock a payload (or a decoded delayed item) carries, if any. An empty token
        is none: it could prove no ownership, and the scripts take '' for "no lock"."""
        info = item.extra.get("unique") if isinstance(item, Payload) else item.get("unique")
        if not isinstance(info, dict):
            return None
        digest, until, token = info.get("key"), info.get("until"), info.get("token")
        if not (isinstance(digest, str) and isinstance(token, str) and token and until in UNTIL):
            return None
        return cls(digest, str(until), token)

    @classmethod
    def of_item(cls, item: bytes) -> UniqueLock | None:
        """The lock a raw queue item carries, if any (None for bytes that are not JSON)."""
        if MARK not in item:  # most jobs are not unique: skip decoding them
            return None
        try:
            data = strict_json.loads(item)
        except ValueError:
            return None
        return cls.of(data) if isinstance(data, dict) else None
