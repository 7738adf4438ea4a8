"""What a worker does when Sentinel moves the Redis master (protocol/sentinel.py).

The new master is a replica that may lack the last writes of the old one:

* a lost **claim** puts the job back at the head of its queue while this worker
  runs it, so another worker may take it and run it at the same time;
* a lost **finish** leaves the job in this worker's in-flight hash, though it ended;
* a lost lease renewal leaves an older lease, which the lease rules already allow for.

With the durability policy (``Replicas``) a job starts only once its claim is on a
replica, so its claim survives; without it, the worker cannot tell which of its
claims survived, so it stops its running jobs (they go back to their queues and run
again) and claims nothing for ``LEASE_RUN_SHARE`` of the lease. That is as long as
any job whose claim was lost may still run elsewhere: a worker that runs one either
renews its lease on the new master, and so notices the move and stops it, or cannot
renew in time and stops it by its lease deadline, which its last renewal on the old
master set before the move. In both cases, once the hold is over, the worker gives
back the in-flight records no processor holds (lost finishes: those jobs run again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pyresque.executors.base import Stop
from pyresque.protocol.sentinel import Address
from pyresque.worker.heartbeat import LEASE_RUN_SHARE

log = logging.getLogger("pyresque.worker")


class Failover:
    """Follows master moves for one worker. ``moved`` is called by the Sentinel
    client from whichever thread noticed; ``after_beat`` by the heartbeat thread."""

    def __init__(
        self,
        worker_id: str,
        stop: Stop,
        lease_ttl: float,
        durable: bool,
        give_back_orphans: Callable[[], int],
    ) -> None:
        self._worker_id = worker_id
        self._stop = stop
        self._hold = lease_ttl * LEASE_RUN_SHARE
        self._durable = durable
        self._give_back_orphans = give_back_orphans
        self._lock = threading.Lock()
        self._orphans_after: float | None = None  # when to look for lost finishes

    def moved(self, address: Address) -> None:
        hold = 0.0 if self._durable else self._hold
        with self._lock:
            self._orphans_after = time.monotonic() + hold
        if self._durable:
            return  # the claims of the running jobs are on the new master
        self._stop.hold(hold)
        log.warning(
            "worker %s: the master moved, and claims not yet replicated may be lost: its "
            "running jobs are stopped and go back to their queues, and it takes none for "
            "%.1f s (a durability policy, PYRESQUE_WAIT_REPLICAS, avoids this)",
            self._worker_id,
            hold,
        )

    def after_beat(self) -> None:
        """Once the hold is over, give back the jobs whose finish the move lost."""
        with self._lock:
            due = self._orphans_after is not None and time.monotonic() >= self._orphans_after
            if due:
                self._orphans_after = None
        if due and (given := self._give_back_orphans()):
            log.warning(
                "worker %s: %d job(s) it had finished were still in flight on the new "
                "master (their finish was lost): back on their queues, they run again",
                self._worker_id,
                given,
            )
