"""Job status tracking, stored exactly as php-resque >= 1.3.4 stores it.

``job:<id>:status`` holds ``{"status":N,"updated":T,"started":T,"result":R}``.
It exists only for jobs enqueued with ``track_status=True``; updates happen only
while the key exists, and a finished status expires after 24 hours. The Lua
scripts of the worker write the transitions (RUNNING through ``RunningMarker``,
running.py); this module reads them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pyresque.protocol import strict_json
from pyresque.protocol.payload import dumps

log = logging.getLogger("pyresque.status")

#: How long a finished (COMPLETE or FAILED) status is kept, as php-resque does.
FINISHED_TTL = 86400


class Status(IntEnum):
    WAITING = 1
    RUNNING = 2
    FAILED = 3
    COMPLETE = 4
    #: pyresque's own: ``Resque.cancel`` took it before it ran or stopped it while it ran
    #: (php-resque has no such state; its ``Resque_Job_Status::get`` returns the number 5).
    CANCELLED = 5

    @property
    def finished(self) -> bool:
        return self in (Status.FAILED, Status.COMPLETE, Status.CANCELLED)


@dataclass(frozen=True)
class JobStatus:
    """A decoded status packet."""

    status: Status
    updated: float
    started: float | None
    result: Any

    @classmethod
    def decode(cls, raw: bytes | str) -> JobStatus | None:
        """A packet as php-resque writes it; None when it is not one (never raises:
        anyone may write the key). Times that are not numbers read as unknown."""
        try:
            packet = strict_json.loads(raw)
            status = Status(int(packet["status"]))
        # Not JSON, not an object, no status, or a status that is no Status's number.
        except (ValueError, KeyError, TypeError, OverflowError):
            return None
        return cls(
            status,
            _seconds(packet.get("updated")) or 0.0,
            _seconds(packet.get("started")),
            packet.get("result"),
        )


def _seconds(value: Any) -> float | None:
    """An epoch time from a packet (php-resque writes integers), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any double
        return None


def cancelled_packet() -> str:
    """The packet of a job cancelled before it ran."""
    now = int(time.time())
    return dumps({"status": int(Status.CANCELLED), "updated": now, "started": None, "result": None})


def waiting_packet() -> str:
    """The packet written at enqueue time."""
    now = int(time.time())
    return dumps({"status": int(Status.WAITING), "updated": now, "started": now, "result": None})


def failed_packet() -> str:
    """The packet of a job failed before it ran (its queue could not take it)."""
    now = int(time.time())
    return dumps({"status": int(Status.FAILED), "updated": now, "started": None, "result": None})
