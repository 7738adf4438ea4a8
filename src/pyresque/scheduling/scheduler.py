"""The scheduler: what turns time into jobs.

Every pass (twice a second by default) it

* moves the delayed jobs that are due to their queues (delayed.py): retries,
  ``enqueue_at`` jobs, and items Ruby's or PHP's resque-scheduler wrote. Every
  scheduler does this; they never move an item twice;
* fires due cron ticks, if it is the cron leader (cron.py);
* wakes jobs waiting for concurrency slots that dead workers held (limits.py);

and, in a thread of its own, applies a retention if one is set (housekeeping.py).

Run it as ``pyresque scheduler``, or inside workers with ``pyresque worker
--with-scheduler`` (a background thread). Run two or more for high availability.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from pyresque.client.resque import Resque
from pyresque.middleware.limits import Limiter
from pyresque.protocol.supervision import Supervised
from pyresque.scheduling.cron import Cron, Schedule
from pyresque.scheduling.housekeeping import Housekeeper, Retention

log = logging.getLogger("pyresque.scheduler")


class Scheduler:
    """One scheduler; ``run()`` in the foreground, or ``start()`` a background thread."""

    def __init__(
        self,
        resque: Resque,
        schedules: Iterable[Schedule] = (),
        *,
        interval: float = 0.5,
        lease: float = 5.0,
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
    ) -> None:
        self.resque = resque
        self.interval = interval
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.cron = Cron(resque, schedules, self.id, lease, clock)
        self.limiter = Limiter(resque.redis, resque.keys, self.id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervised = Supervised("scheduler", log, interval)
        self.housekeeper: Housekeeper | None = None
        if retention is not None and retention.enabled:
            self.housekeeper = Housekeeper(resque, retention, self.id)

    def tick(self, now: float | None = None) -> int:
        """One pass; returns how many jobs it enqueued (delayed and cron)."""
        now = self.clock() if now is None else now
        moved = self.resque.delayed.move_due(now, self.id)
        fired = self.cron.run_once(now)
        self.limiter.wake_all()
        return moved + fired

    def _pass(self) -> None:
        """``tick()``, where a failing part (logged) does not skip the others: a bad
        delayed item stops neither cron nor the limits' sweep."""
        now = self.clock()
        guard = self._supervised.guard
        guard(self.resque.delayed.move_due, now, self.id)
        guard(self.cron.run_once, now)
        guard(self.limiter.wake_all)

    def run(self) -> None:
        """Pass after pass until ``stop()``; rides out Redis outages, and logs any other
        failure of a pass (with its traceback) and goes on (supervision.py)."""
        log.info("scheduler %s started (%d schedules)", self.id, len(self.cron.schedules))
        keeper = self._start_housekeeping()
        self._supervised.loop(self._pass, self._stop)
        if keeper is not None:
            keeper.join(timeout=5)
        self._supervised.call(self.cron.resign)  # if it fails, the lead expires on its own
        log.info("scheduler %s stopped", self.id)

    def _start_housekeeping(self) -> threading.Thread | None:
        housekeeper = self.housekeeper
        if housekeeper is None:
            return None
        supervised = Supervised("retention", log, housekeeper.retention.every)

        def run() -> None:
            supervised.call(housekeeper.run_once)  # a first pass at start
            supervised.loop(housekeeper.run_once, self._stop)

        thread = threading.Thread(target=run, name="pyresque-retention", daemon=True)
        thread.start()
        return thread

    def start(self) -> None:
        """Run in a background (daemon) thread."""
        self._thread = threading.Thread(target=self.run, name="pyresque-scheduler", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the background thread runs (False before ``start()``)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
