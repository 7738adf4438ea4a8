"""Schedule definitions: cron expressions (with seconds and time zones) and fixed
intervals, their tick arithmetic, and resque-scheduler's YAML format. Pure: no Redis
here; cron.py fires the ticks (and re-exports these names).

Time zones: a cron expression is read in its zone and DST is handled as Vixie
cron does: a wall time skipped by a spring-forward runs at the first instant
after the gap; a wall time repeated by a fall-back runs once, unless the
expression's hour field is a wildcard (``*``, ``*/n``: then it runs by elapsed
time, at both instants).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from croniter import croniter

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
    """The schedules a process declares (``pyresque.schedules``)."""

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
