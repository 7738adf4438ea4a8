"""Job status tracking, stored exactly as php-resque >= 1.3.4 stores it.

``job:<id>:status`` holds ``{"status":N,"updated":T,"started":T,"result":R}``.
It exists only for jobs enqueued with ``track_status=True``; updates happen only
while the key exists, and a finished status expires after 24 hours. The Lua
scripts of the worker write the transitions; this module reads them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pyresque.payload import dumps

#: How long a finished (COMPLETE or FAILED) status is kept, as php-resque does.
FINISHED_TTL = 86400


class Status(IntEnum):
    WAITING = 1
    RUNNING = 2
    FAILED = 3
    COMPLETE = 4

    @property
    def finished(self) -> bool:
        return self in (Status.FAILED, Status.COMPLETE)


@dataclass(frozen=True)
class JobStatus:
    """A decoded status packet."""

    status: Status
    updated: float
    started: float | None
    result: Any

    @classmethod
    def decode(cls, raw: bytes | str) -> JobStatus | None:
        try:
            packet = json.loads(raw)
            return cls(
                Status(int(packet["status"])),
                float(packet.get("updated") or 0),
                packet.get("started"),
                packet.get("result"),
            )
        except (ValueError, KeyError, TypeError):
            return None


def waiting_packet() -> str:
    """The packet written at enqueue time."""
    now = int(time.time())
    return dumps({"status": int(Status.WAITING), "updated": now, "started": now, "result": None})
