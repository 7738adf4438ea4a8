"""Wakes the heartbeat as soon as a command lands on the worker's control list, so a
``Resque.cancel`` (or ``pyresque ctl``) reaches a worker in milliseconds instead of at
its next beat (a fifth of the lease: 1 s by default).

It only waits: a ``BLMOVE`` of the list onto its own tail, which leaves the list as it
was, on a connection of its own. The heartbeat alone reads and empties the list, so
commands are still delivered once and in order. No Redis command per job: one blocking
call per ``MAX_BLOCK`` seconds while no command comes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from pyresque.protocol.connection import MAX_BLOCK, REDIS_DOWN
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.worker")


class ControlWatch(threading.Thread):
    """Calls ``wake`` (which returns once a beat read the list, or after a while) each
    time the control list ``key`` holds a command. No exception ends the thread."""

    def __init__(self, client: redis.Redis, key: str, wake: Callable[[], None]) -> None:
        super().__init__(name="pyresque-control-watch", daemon=True)
        self._client = client
        self._key = key
        self._wake = wake
        self._stopped = threading.Event()
        self._supervised = Supervised("control watch", log, 1.0)

    def run(self) -> None:
        try:
            self._supervised.until_done(self._watch, self._stopped)
        finally:
            self._client.close()  # only now: the pool must not get it back mid-wait

    def _watch(self) -> None:
        while not self._stopped.is_set():
            try:
                # RIGHT to RIGHT: the last command back where it was; nothing taken.
                came = self._client.blmove(self._key, self._key, int(MAX_BLOCK), "RIGHT", "RIGHT")
            except REDIS_DOWN:
                if self._stopped.is_set():
                    return  # the worker closed its connections as it stopped
                # The heartbeat says Redis is down (and when it is back); wait, not spin.
                self._stopped.wait(1.0)
                continue
            if came is not None and not self._stopped.is_set():
                self._wake()

    def stop(self) -> None:
        """Stop after the current wait (at most ``MAX_BLOCK`` s: the thread is a daemon,
        and its connection is out of the pool until then)."""
        self._stopped.set()
