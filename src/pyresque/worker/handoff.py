"""Claiming for the free processors of a concurrent worker (threads, asyncio, prefork).

When several processors are free at once, one Redis call claims a job for each of
them. One free processor at a time, the *waiter*, claims and then waits on Redis;
the other free ones wait in their ``Box``. Whoever claims (the waiter, or a busy
processor finishing its job, whose finish call claims its own next job anyway)
claims for every free processor too and hands each its job.

Why this is safe: a job is claimed only for a processor that is free at that
moment and starts it at once, so no claimed job waits behind another (priority
order holds exactly as if each processor claimed for itself), and every claim is
the usual atomic claim with its in-flight record (zero loss).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from pyresque.protocol.claim import Claim


class Box:
    """Where a free processor waits for what another one hands it."""

    #: Handed to a box instead of a job: "nothing for you; look again".
    NOTHING = None
    #: Handed to a box: "you are the waiter now".
    WAIT = "wait"

    def __init__(self) -> None:
        self._messages: queue.SimpleQueue[Claim | str | None] = queue.SimpleQueue()

    def put(self, message: Claim | str | None) -> None:
        self._messages.put(message)

    def get(self, timeout: float | None) -> Claim | str | None:
        """The next message; raises ``queue.Empty`` after ``timeout`` seconds."""
        return self._messages.get(timeout=timeout)


class Handoff:
    """The free processors of one worker, and who waits on Redis for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Box] = []  # waiting in their boxes, first come first served
        self._waiter = False  # a free processor claims and waits on Redis

    def enter(self, box: Box) -> bool:
        """A processor is free: True if it is to be the waiter, else it waits in ``box``."""
        with self._lock:
            if not self._waiter:
                self._waiter = True
                return True
            self._free.append(box)
            return False

    def leave(self, box: Box) -> bool:
        """A processor stops waiting in ``box`` (to look at the shutdown flags). False if
        someone already took the box: a message for it is on its way."""
        with self._lock:
            if box in self._free:
                self._free.remove(box)
                return True
            return False

    def wait_in(self, box: Box, stopping: Callable[[], bool]) -> Claim | str | None:
        """Wait in ``box`` for another processor to hand us a job (or the waiting); give
        up only to stop, looking at ``stopping`` once a second."""
        while True:
            try:
                return box.get(timeout=1.0)
            except queue.Empty:
                if stopping() and self.leave(box):
                    return None

    def take_free(self) -> list[Box]:
        """The boxes of every free processor, to claim a job for each; the caller must
        ``hand_out`` to every one of them."""
        with self._lock:
            boxes, self._free = self._free, []
            return boxes

    @staticmethod
    def hand_out(boxes: list[Box], claims: list[Claim]) -> None:
        """Give each box its job, in order; the boxes left over get ``NOTHING``."""
        for i, box in enumerate(boxes):
            box.put(claims[i] if i < len(claims) else Box.NOTHING)

    def stop_waiting(self) -> None:
        """The waiter has a job now (or stops): a free processor takes over the waiting."""
        with self._lock:
            self._waiter = False
            if self._free:
                self._waiter = True
                self._free.pop(0).put(Box.WAIT)
