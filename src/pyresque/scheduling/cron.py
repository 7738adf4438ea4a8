"""Recurring jobs: cron expressions (with seconds and time zones) and fixed intervals.

Declared in Python (``cron.schedules.add(Schedule(...))``) or in a YAML file in
resque-scheduler's format (``load_yaml``). Any number of schedulers may run;
one at a time is the *leader* (a lease renewed on every loop, cron_leader.lua)
and fires ticks. Each tick is fired at most once: cron_fire.lua checks that the
caller still leads and that the tick is later than the last one handled (the
per-tick idempotency record, ``pyresque:cron:ticks``), then enqueues and
records it in one atomic step. A new leader continues from that record, so a
failover neither repeats a tick nor loses one.

Ticks missed while no scheduler ran (later than ``grace``) follow the
schedule's misfire policy: ``skip`` them, run ``once`` for all of them, or run
``all`` of them. Ticks that are late by less than ``grace`` (a failover, a slow
loop) always run. Schedules and their tick arithmetic are in cron_schedule.py.

Anyone may write the cron hashes: a last tick that cannot be read (or lies
further in the future than clocks disagree) is logged once and the schedule
starts again from now (all of them when the hash is not a hash: it is replaced);
``status`` shows unreadable states and definitions as such; a lease key that no
scheduler wrote (another type, no TTL) is replaced; a paused set or state hash of
another type is ignored.

Reading the schedules' state, pausing and resuming them are admin functions
(``client.admin.cron``: no cron parser needed); they are named here too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import cast

import redis

from pyresque.client.admin.cron import ScheduleStatus, pause, resume, status
from pyresque.client.resque import Enqueued, Resque
from pyresque.protocol import foreign_queues, scripts
from pyresque.protocol.connection import replies, text, wrong_type
from pyresque.protocol.status import waiting_packet
from pyresque.scheduling.cron_schedule import (
    CATCH_UP,
    MISFIRE,
    Schedule,
    ScheduleSet,
    from_config,
    load_yaml,
    parse_duration,
    schedules,
)

__all__ = [
    "CATCH_UP",
    "MISFIRE",
    "Cron",
    "Schedule",
    "ScheduleSet",
    "ScheduleStatus",
    "from_config",
    "load_yaml",
    "parse_duration",
    "pause",
    "resume",
    "schedules",
    "status",
]

log = logging.getLogger("pyresque.cron")


#: How far past now a recorded tick may be (another scheduler's clock runs ahead);
#: further is corrupt data, which would hold the schedule back for that long.
_CLOCK_SKEW = 86400


def _tick(value: bytes | None, now: float) -> int | None:
    """The last tick handled, as recorded; None if none is, or if it is unreadable."""
    if value is None or not value.isdigit() or len(value) > 12:
        return None
    tick = int(value)
    return tick if tick <= now + _CLOCK_SKEW else None


class Cron:
    """Fires the ticks of ``schedules`` while this process leads."""

    def __init__(
        self,
        resque: Resque,
        schedules: Iterable[Schedule],
        scheduler_id: str,
        lease: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resque = resque
        self.schedules = {s.name: s for s in schedules}
        self.id = scheduler_id
        self.lease_ms = int(lease * 1000)
        self.clock = clock
        self.leading = False
        self._reported: dict[str, str] = {}  # unreadable data already logged

    def run_once(self, now: float | None = None) -> int:
        """Lead (or try to) and fire every due tick; returns how many jobs were enqueued."""
        if not self.schedules:
            return 0  # never lead with nothing to fire: a scheduler that has schedules must
        now = self.clock() if now is None else now
        keys = self.resque.keys
        leads = bool(
            scripts.run(
                self.resque.redis, "cron_leader", [keys.cron_leader], [self.id, self.lease_ms]
            )
        )
        if leads and not self.leading:
            log.info("scheduler %s leads cron (%d schedules)", self.id, len(self.schedules))
            self._declare()
        self.leading = leads
        if not leads:
            return 0
        names = list(self.schedules)
        try:
            handled = cast("list[bytes | None]", self.resque.redis.hmget(keys.cron_ticks, names))
        except redis.exceptions.ResponseError as exc:
            if not wrong_type(exc):
                raise
            # Not a hash: no tick record can be read, so every schedule starts again.
            self._corrupt(keys.cron_ticks, str(exc))
            self.resque.redis.delete(keys.cron_ticks)
            handled = [None] * len(names)
        fired = 0
        for name, value in zip(names, handled, strict=True):
            schedule = self.schedules[name]
            last = _tick(value, now)
            if value is not None and last is None:
                self._corrupt(f"{name}'s last tick", repr(value[:40]))
            if last is None:
                self._start(schedule, now, repair=value is not None)
            else:
                fired += self._catch_up(schedule, last, now)
        return fired

    def _corrupt(self, what: str, value: str) -> None:
        """Log unreadable cron data once per value (the scheduler passes twice a second)."""
        if self._reported.get(what) != value:
            self._reported[what] = value
            log.error("cron: %s is unreadable (%s); starting it again from now", what, value)

    def resign(self) -> None:
        """Give up the lead at once (on a clean stop), so another scheduler takes over."""
        scripts.run(self.resque.redis, "unlock", [self.resque.keys.cron_leader], [self.id])
        self.leading = False

    def _declare(self) -> None:
        """Publish our schedules, for ``pyresque cron list`` (the leader's set wins)."""
        keys, r = self.resque.keys, self.resque.redis
        pipe = r.pipeline(transaction=False)
        known = set(cast("list[bytes]", r.hkeys(keys.cron_schedules)))
        for stale in known - {n.encode() for n in self.schedules}:
            pipe.hdel(keys.cron_schedules, stale)
        for name, schedule in self.schedules.items():
            pipe.hset(keys.cron_schedules, name, json.dumps(schedule.to_dict()))
        pipe.execute()

    def _start(self, schedule: Schedule, now: float, repair: bool = False) -> None:
        """A schedule never handled before starts from now: no backlog from the past; so
        does one whose record is unreadable (``repair``: it is overwritten)."""
        keys, pipe = self.resque.keys, self.resque.redis.pipeline(transaction=False)
        state = json.dumps({"next_run": schedule.next_after(now)})
        write = pipe.hset if repair else pipe.hsetnx
        write(keys.cron_ticks, schedule.name, int(now))
        write(keys.cron_state, schedule.name, state)
        replies(pipe)  # a state hash of another type only loses what cron list shows

    def _catch_up(self, schedule: Schedule, last: int, now: float) -> int:
        """Fire the ticks of ``schedule`` after ``last`` (the last one handled) up to now."""
        late_until = math.floor(now - schedule.grace)
        fired = 0
        if last < late_until:  # ticks missed while no scheduler ran: the misfire policy
            if schedule.misfire == "all":
                missed = schedule.ticks(last, late_until)
                for tick in missed:
                    fired += self._fire(schedule, tick, now, "ran late (misfire: all)")
                if len(missed) == CATCH_UP:
                    return fired  # more than one loop's worth: the rest next loop
            else:
                latest = schedule.latest(late_until)
                if latest is not None and latest > last:
                    count = len(schedule.ticks(last, latest))
                    missed_text = f"{count}{'+' if count == CATCH_UP else ''} missed tick(s)"
                    if schedule.misfire == "once":
                        fired += self._fire(schedule, latest, now, f"ran once for {missed_text}")
                    else:
                        self._fire(schedule, latest, now, f"skipped {missed_text}", skip=True)
            last = max(last, late_until)
        for tick in schedule.ticks(last, now):
            fired += self._fire(schedule, tick, now, "enqueued")
        return fired

    def _fire(
        self, schedule: Schedule, tick: int, now: float, outcome: str, skip: bool = False
    ) -> int:
        resque, keys = self.resque, self.resque.keys
        payload = None
        if not skip:
            item = Enqueued(schedule.queue, schedule.job, list(schedule.args), track_status=True)
            payload = resque.payload_for(item)
            if payload is not None:
                payload.extra["cron"] = {"schedule": schedule.name, "tick": tick}
        state = {
            "last_tick": tick,
            "last_run": int(now),
            "job_id": payload.id if payload else None,
            "outcome": outcome if payload or skip else "vetoed by a before_enqueue hook",
            "next_run": schedule.next_after(max(now, tick)),
        }
        paused = {**state, "job_id": None, "outcome": "paused"}
        if keys.clustered and resque.redis.sismember(keys.cron_paused, schedule.name):
            self._handled(schedule.name, tick, paused)  # Cluster: see _handled
            return 0
        shard = keys.for_queue(schedule.queue)  # on Cluster, the queue's slot
        redis_keys = [
            shard.cron_leader,
            shard.cron_ticks,
            shard.cron_state,
            shard.cron_paused,
            shard.queues,
            shard.queue(schedule.queue),
            shard.wake(schedule.queue),
            shard.queues_changed,
        ]
        status = ""  # the WAITING packet, with the status key it goes to
        if payload is not None and payload.id:
            redis_keys.append(shard.status(payload.id, payload.prefix))
            status = waiting_packet()
        args = [
            "" if keys.clustered else self.id,
            schedule.name,
            tick,
            payload.encode() if payload else "",
            schedule.queue,
            json.dumps(state),
            json.dumps(paused),
            status,
        ]
        if keys.clustered:
            resque._register([schedule.queue])
        result = scripts.run(resque.redis, "cron_fire", redis_keys, args)
        if isinstance(result, list):  # the queue's key holds another type: tick consumed
            queue_key, found = shard.queue(schedule.queue), text(result[1])
            foreign_queues.skipped(schedule.queue, queue_key, found)
            state["outcome"] = f"not enqueued: {queue_key} holds a {found}, not a list"
            state["job_id"] = None
            self._handled(schedule.name, tick, state)  # what cron list shows (the tick: again)
            return 0
        if keys.clustered and result in (0, 1):
            self._handled(schedule.name, tick, state if result == 1 else None)
        if result == -1:
            self.leading = False
        if result != 1 or payload is None:
            return 0
        resque.announce(item, payload)
        return 1

    def _handled(self, name: str, tick: int, state: Mapping[str, object] | None) -> None:
        """On Cluster, the tick's record in the home slot, after the fire call in the
        queue's slot: each tick is fired once by the record in the queue's slot
        (cron_fire.lua); this one, which a crash may leave behind, is where the next
        pass starts, and what ``cron list`` shows. The leader was checked at the start
        of the pass, and pausing is read just before the fire (a pause in between lets
        one more tick go)."""
        keys, pipe = self.resque.keys, self.resque.redis.pipeline(transaction=False)
        pipe.hset(keys.cron_ticks, name, tick)
        if state is not None:
            pipe.hset(keys.cron_state, name, json.dumps(state))
        replies(pipe)
