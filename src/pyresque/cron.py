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
loop) always run.

Time zones: a cron expression is read in its zone and DST is handled as Vixie
cron does: a wall time skipped by a spring-forward runs at the first instant
after the gap; a wall time repeated by a fall-back runs once, unless the
expression's hour field is a wildcard (``*``, ``*/n``: then it runs by elapsed
time, at both instants).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from croniter import croniter

from pyresque import scripts
from pyresque.client import Enqueued, Resque
from pyresque.connection import text
from pyresque.status import JobStatus, waiting_packet

log = logging.getLogger("pyresque.cron")

MISFIRE = ("skip", "once", "all")
#: Most missed ticks one loop fires for a schedule with misfire "all" (the rest next loop).
CATCH_UP = 100

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdwy])")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(value: str | float) -> float:
    """Seconds in a rufus-scheduler duration (``"30s"``, ``"1h30m"``, ``"2d"``) or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    spec = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(spec)
    if not parts or "".join(n + u for n, u in parts) != spec:
        raise ValueError(f"cannot read the duration {value!r}; write e.g. 30s, 5m, 1h30m or 2d")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class Schedule:
    """A recurring job.

    ``cron``: 5 fields, or 6 with seconds first (rufus-scheduler's order), and an
    optional trailing time zone (``"0 5 * * * Europe/Berlin"``); or ``every``:
    seconds between runs (ticks at whole multiples of it since the epoch, so every
    scheduler agrees on them). ``args`` is the payload's argument list.
    """

    name: str
    job: str
    queue: str
    args: list[Any] = field(default_factory=list)
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    misfire: str = "once"
    grace: float = 30.0
    description: str = ""

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"schedule {self.name!r}: give exactly one of cron= or every=")
        if self.misfire not in MISFIRE:
            raise ValueError(f"schedule {self.name!r}: misfire must be one of {', '.join(MISFIRE)}")
        if self.every is not None and (self.every < 1 or self.every != int(self.every)):
            raise ValueError(f"schedule {self.name!r}: every= must be whole seconds, >= 1")
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) in (6, 7) and fields[-1] in _zones():
                object.__setattr__(self, "tz", fields[-1])
                object.__setattr__(self, "cron", " ".join(fields[:-1]))
            if not croniter.is_valid(self.expression, second_at_beginning=True):
                raise ValueError(f"schedule {self.name!r}: invalid cron expression {self.cron!r}")
        try:
            zoneinfo.ZoneInfo(self.tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"schedule {self.name!r}: unknown time zone {self.tz!r}") from exc

    @property
    def expression(self) -> str:
        return self.cron or ""

    @property
    def _with_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def _iter(self, start: float, backwards: bool = False) -> croniter[datetime]:
        begin = datetime.fromtimestamp(start, zoneinfo.ZoneInfo(self.tz))
        return croniter(
            self.expression,
            begin,
            ret_type=datetime,
            is_prev=backwards,
            second_at_beginning=self._with_seconds,
        )

    def _repeated(self, when: datetime) -> bool:
        """Whether ``when`` is the second occurrence of a wall time (DST fall-back) that a
        fixed-hour expression must not run again."""
        hour = self.expression.split()[2 if self._with_seconds else 1]
        if hour == "*" or hour.startswith("*/"):
            return False
        first = when.replace(fold=0)
        return first.utcoffset() != when.utcoffset() and first.timestamp() < when.timestamp()

    def ticks(self, after: float, until: float, limit: int = CATCH_UP) -> list[int]:
        """The ticks in (after, until], oldest first, at most ``limit``."""
        found: list[int] = []
        if self.every is not None:
            step = int(self.every)
            tick = (math.floor(after) // step + 1) * step
            while tick <= until and len(found) < limit:
                found.append(tick)
                tick += step
            return found
        it = self._iter(after)
        while len(found) < limit:
            when = it.get_next(datetime)
            if when.timestamp() > until:
                break
            if not self._repeated(when):
                found.append(int(when.timestamp()))
        return found

    def latest(self, until: float) -> int | None:
        """The last tick at or before ``until``."""
        if self.every is not None:
            return math.floor(until) // int(self.every) * int(self.every)
        it = self._iter(math.floor(until) + 1, backwards=True)
        for _ in range(3):  # a repeated wall time is skipped: look one further back
            when = it.get_prev(datetime)
            if not self._repeated(when):
                return int(when.timestamp())
        return None

    def next_after(self, after: float) -> int:
        """The first tick after ``after``."""
        ticks = self.ticks(after, after + 400 * 86400, limit=1)
        return ticks[0] if ticks else 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls(**data)


class ScheduleSet:
    """The schedules a process declares (``pyresque.cron.schedules``)."""

    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}

    def add(self, schedule: Schedule) -> Schedule:
        if schedule.name in self._schedules and self._schedules[schedule.name] != schedule:
            raise ValueError(f"a different schedule named {schedule.name!r} is already declared")
        self._schedules[schedule.name] = schedule
        return schedule

    def extend(self, schedules: Iterable[Schedule]) -> None:
        for schedule in schedules:
            self.add(schedule)

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self._schedules.values())

    def __len__(self) -> int:
        return len(self._schedules)


#: The application's schedules; ``pyresque scheduler --app`` imports modules that add to it.
schedules = ScheduleSet()


def from_config(name: str, config: dict[str, Any]) -> Schedule:
    """A schedule from one entry of a resque-scheduler YAML file.

    Reads ``cron`` or ``every`` (a duration, or ``[duration, {options}]``),
    ``class`` (default: the entry's name), ``queue``, ``args`` (a mapping is one
    argument; a list is the positional arguments; a scalar is one argument, as
    Ruby's ``Array(args)``), ``description``; and pyresque's ``tz``, ``misfire``
    and ``grace``. Ruby-only keys (``rails_env``, ``persist``, ...) are ignored.
    """
    args = config.get("args")
    listed = [args] if isinstance(args, dict) else list(args) if isinstance(args, list) else []
    if args is not None and not isinstance(args, (dict, list)):
        listed = [args]
    every = config.get("every")
    if isinstance(every, list):
        every = every[0]
    queue = config.get("queue")
    if not queue:
        raise ValueError(f"schedule {name!r} names no queue")
    return Schedule(
        name=name,
        job=str(config.get("class") or name),
        queue=str(queue),
        args=listed,
        cron=config.get("cron"),
        every=parse_duration(every) if every is not None else None,
        tz=str(config.get("tz") or config.get("timezone") or "UTC"),
        misfire=str(config.get("misfire", "once")),
        grace=parse_duration(config.get("grace", 30)),
        description=str(config.get("description") or ""),
    )


def load_yaml(path: str | Path) -> list[Schedule]:
    """The schedules of a resque-scheduler YAML file (needs PyYAML: ``pyresque[cron-yaml]``)."""
    try:
        import yaml
    except ImportError as exc:
        raise RuntimeError(
            "reading a YAML schedule needs PyYAML: pip install 'pyresque[cron-yaml]'"
        ) from exc
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a schedule file maps schedule names to their settings")
    return [from_config(str(name), config or {}) for name, config in data.items()]


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
        raw_ticks = cast("dict[bytes, bytes]", self.resque.redis.hgetall(keys.cron_ticks))
        handled = {text(k): int(v) for k, v in raw_ticks.items()}
        fired = 0
        for schedule in self.schedules.values():
            last = handled.get(schedule.name)
            if last is None:
                self._start(schedule, now)
            else:
                fired += self._catch_up(schedule, last, now)
        return fired

    def resign(self) -> None:
        """Give up the lead at once (on a clean stop), so another scheduler takes over."""
        scripts.run(self.resque.redis, "unlock", [self.resque.keys.cron_leader], [self.id])
        self.leading = False

    def _declare(self) -> None:
        """Publish our schedules, for ``pyresque cron list`` (the leader's set wins)."""
        keys, r = self.resque.keys, self.resque.redis
        pipe = r.pipeline(transaction=False)
        known = {text(n) for n in r.hkeys(keys.cron_schedules)}
        for name in known - set(self.schedules):
            pipe.hdel(keys.cron_schedules, name)
        for name, schedule in self.schedules.items():
            pipe.hset(keys.cron_schedules, name, json.dumps(schedule.to_dict()))
        pipe.execute()

    def _start(self, schedule: Schedule, now: float) -> None:
        """A schedule never handled before starts from now: no backlog from the past."""
        keys, pipe = self.resque.keys, self.resque.redis.pipeline(transaction=False)
        pipe.hsetnx(keys.cron_ticks, schedule.name, int(now))
        pipe.hsetnx(
            keys.cron_state, schedule.name, json.dumps({"next_run": schedule.next_after(now)})
        )
        pipe.execute()

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
        redis_keys = [
            keys.cron_leader,
            keys.cron_ticks,
            keys.cron_state,
            keys.cron_paused,
            keys.queues,
            keys.queue(schedule.queue),
            keys.wake(schedule.queue),
            keys.queues_changed,
        ]
        if payload is not None and payload.id:
            redis_keys.append(keys.status(payload.id, payload.prefix))
        args = [
            self.id,
            schedule.name,
            tick,
            payload.encode() if payload else "",
            schedule.queue,
            json.dumps(state),
            json.dumps(paused),
            waiting_packet(),
        ]
        result = scripts.run(resque.redis, "cron_fire", redis_keys, args)
        if result == -1:
            self.leading = False
        if result != 1 or payload is None:
            return 0
        resque.announce(item, payload)
        return 1


@dataclass(frozen=True)
class ScheduleStatus:
    """What ``pyresque cron list`` and the dashboard show for one schedule."""

    name: str
    definition: dict[str, Any]
    paused: bool
    last_run: int | None
    next_run: int | None
    outcome: str
    job_id: str | None
    job_status: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(resque: Resque) -> list[ScheduleStatus]:
    """Every declared schedule with its last run, next run and outcome."""
    keys, r = resque.keys, resque.redis
    definitions = cast("dict[bytes, bytes]", r.hgetall(keys.cron_schedules))
    states = cast("dict[bytes, bytes]", r.hgetall(keys.cron_state))
    paused = {text(n) for n in r.smembers(keys.cron_paused)}
    found = []
    for raw_name in sorted(definitions):
        name = text(raw_name)
        state = json.loads(states.get(raw_name, b"{}"))
        job_id = state.get("job_id")
        packet = resque.job_status(job_id) if job_id else None
        found.append(
            ScheduleStatus(
                name=name,
                definition=json.loads(definitions[raw_name]),
                paused=name in paused,
                last_run=state.get("last_run"),
                next_run=state.get("next_run"),
                outcome=state.get("outcome", "not run yet"),
                job_id=job_id,
                job_status=_status_name(packet),
            )
        )
    return found


def _status_name(packet: JobStatus | None) -> str | None:
    return packet.status.name.lower() if packet else None


def pause(resque: Resque, name: str) -> bool:
    """Pause a schedule: its ticks pass without enqueueing. False if it is unknown."""
    if not resque.redis.hexists(resque.keys.cron_schedules, name):
        return False
    resque.redis.sadd(resque.keys.cron_paused, name)
    return True


def resume(resque: Resque, name: str) -> bool:
    """Resume a paused schedule (no backlog: the ticks it missed stay skipped)."""
    return bool(resque.redis.srem(resque.keys.cron_paused, name))
