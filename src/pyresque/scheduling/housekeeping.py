"""Retention: what a scheduler removes when asked, so nothing grows without bound.

Resque keeps every failure record and every queue name forever, and so does pyresque
unless a retention is set (all off by default, for Resque compatibility):

* ``keep_failed``: only the newest N failure records stay (all of Cluster's lists as one);
* ``failed_max_age``: records that failed more than this many seconds ago go;
* ``forget_idle_queues``: names of queues empty and unwatched for this many seconds
  leave the ``queues`` set (client/admin/idle_queues.py: a later job brings one back).

The same rules as ``pyresque failed trim`` and ``pyresque forget-idle-queues``, run by
the scheduler once per ``every`` seconds in a thread of its own (a first trim of a long
backlog takes a while; delayed jobs and cron must not wait for it). Of all the
deployment's schedulers, the one that takes the period's lock does the work: a lost
scheduler's period passes to another one at the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyresque.client.admin.failed_trim import trim
from pyresque.client.admin.idle_queues import forget_idle_queues
from pyresque.client.resque import Resque

log = logging.getLogger("pyresque.scheduler")


@dataclass(frozen=True)
class Retention:
    """Which retention rules apply; None: that rule is off."""

    keep_failed: int | None = None
    failed_max_age: float | None = None
    forget_idle_queues: float | None = None
    every: float = 60.0  # seconds between passes

    @property
    def enabled(self) -> bool:
        rules = (self.keep_failed, self.failed_max_age, self.forget_idle_queues)
        return any(rule is not None for rule in rules)


class Housekeeper:
    """Applies a ``Retention``; ``run_once`` is one period's pass."""

    def __init__(self, resque: Resque, retention: Retention, owner: str) -> None:
        self.resque = resque
        self.retention = retention
        self.owner = owner
        self._lock = f"{resque.keys.home.prefix}pyresque:housekeeping"

    def run_once(self) -> bool:
        """Apply the rules, unless another scheduler has this period; whether it did."""
        rules = self.retention
        period_ms = max(1, int(rules.every * 1000))
        if not self.resque.redis.set(self._lock, self.owner, nx=True, px=period_ms):
            return False
        if rules.keep_failed is not None or rules.failed_max_age is not None:
            dropped = trim(self.resque, rules.keep_failed, rules.failed_max_age)
            if dropped:
                log.info("retention: removed %d failure records", dropped)
        if rules.forget_idle_queues is not None:
            forgotten = forget_idle_queues(self.resque, rules.forget_idle_queues)["forgotten"]
            if forgotten:
                log.info("retention: forgot %d idle queues", len(forgotten))
        return True
