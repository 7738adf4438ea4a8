"""Job status tracking, stored exactly as php-resque >= 1.3.4 stores it.

``job:<id>:status`` holds ``{"status":N,"updated":T,"started":T,"result":R}``.
It exists only for jobs enqueued with ``track_status=True``; updates happen only
while the key exists, and a finished status expires after 24 hours. The Lua
scripts of the worker write the transitions (RUNNING through ``RunningMarker``);
this module reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis

from pyresque.protocol import scripts, strict_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.status")

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


def waiting_packet() -> str:
    """The packet written at enqueue time."""
    now = int(time.time())
    return dumps({"status": int(Status.WAITING), "updated": now, "started": now, "result": None})


class Mark:
    """A started job's pending RUNNING write; ``finish()`` before recording its end."""

    def __init__(self, key: str, due: float) -> None:
        self.key = key
        self.due = due
        self.lock = threading.Lock()
        self.done = False

    def finish(self) -> None:
        # Taking the lock waits for a RUNNING write in progress, so it always lands
        # before the job's COMPLETE or FAILED. The wait is bounded: the marker's calls
        # end within half the lease (connection.lease_client), whatever they raise.
        with self.lock:
            self.done = True


class RunningMarker(threading.Thread):
    """Marks tracked jobs RUNNING off the hot path.

    php-resque's RUNNING costs a round trip per job that carries an id, tracked or
    not. Instead, this thread writes it ``delay`` to ``2 * delay`` seconds after the job
    started, if the job is still running: a job that ends sooner goes straight from WAITING to
    COMPLETE or FAILED, which no observer could have told apart from a RUNNING that
    lasted a few milliseconds.

    A finishing job waits for a RUNNING write in progress (``Mark.finish``), so
    ``client`` should bound its calls (connection.lease_client). No exception ends
    the thread (supervision.py).
    """

    def __init__(self, client: redis.Redis, keys: Keys, delay: float = 0.005) -> None:
        super().__init__(name="pyresque-status", daemon=True)
        self._redis = client
        self._keys = keys
        self.delay = delay
        self._marks: list[Mark] = []  # in start order, so the earliest due comes first
        self._wake = threading.Condition()
        self._asleep = False  # waiting with no timeout: a new mark must notify
        self._stopped = False
        self._done = threading.Event()  # set with _stopped
        self._supervised = Supervised("RUNNING status", log, delay)

    def started(self, payload: Payload) -> Mark | None:
        """Schedule the RUNNING write for a job that just started (None without an id)."""
        if not payload.id:
            return None
        mark = Mark(self._keys.status(payload.id, payload.prefix), time.monotonic() + self.delay)
        with self._wake:
            self._marks.append(mark)
            if self._asleep:  # otherwise the thread wakes by itself within ``delay``
                self._wake.notify()
        return mark

    def run(self) -> None:
        self._supervised.until_done(self._mark_all, self._done)

    def _mark_all(self) -> None:
        while (mark := self._next()) is not None:
            with mark.lock:
                if not mark.done:
                    self._supervised.call(self._write, mark)

    def _write(self, mark: Mark) -> None:
        scripts.run(self._redis, "set_status", [mark.key], [int(Status.RUNNING), "null"])

    def _next(self) -> Mark | None:
        # Wakes once per ``delay`` at most, not once per job: marks of jobs that ended
        # meanwhile are dropped unseen. With none left it waits one ``delay`` more before
        # sleeping until notified, so a worker busy with short jobs never has to wake it
        # (a notify per job costs a system call and a thread switch).
        lingered = False
        with self._wake:
            while not self._stopped:
                self._marks = [m for m in self._marks if not m.done]
                if not self._marks:
                    if lingered:
                        self._asleep = True
                        self._wake.wait()
                        self._asleep = lingered = False
                    else:
                        self._wake.wait(self.delay)
                        lingered = True
                    continue
                lingered = False
                wait = self._marks[0].due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                return self._marks.pop(0)
        return None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._done.set()
            self._wake.notify()
        if self.is_alive():
            self.join(timeout=5)
