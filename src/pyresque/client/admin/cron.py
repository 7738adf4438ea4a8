"""Cron entries: the recurring schedules the cron leader declared, their last and next
runs, pausing and resuming them.

Reading them needs no cron parser (nor croniter): the leader (``scheduling.cron``)
computes each next run when it fires and records it with the state, and a published
definition is checked for its shape only, as the leader wrote it
(``Schedule.to_dict``). Anyone may write these hashes: a definition that is not a
schedule is shown as ``{}`` and a state that cannot be read as empty, each with
``outcome`` saying why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

from pyresque.client.admin.base import Namespace, as_text
from pyresque.client.admin.items import args_text, finite
from pyresque.protocol import strict_json
from pyresque.protocol.status import JobStatus

#: A published definition's fields (``Schedule``'s) and the JSON types each may hold.
_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "job": (str,),
    "queue": (str,),
    "args": (list,),
    "cron": (str,),
    "every": (int, float),
    "tz": (str,),
    "misfire": (str,),
    "grace": (int, float),
    "description": (str,),
}
_REQUIRED = ("name", "job", "queue")
_MISFIRE = ("skip", "once", "all")


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


def status(resque: Namespace) -> list[ScheduleStatus]:
    """Every declared schedule with its last run, next run and outcome."""
    keys, r = resque.keys, resque.redis
    definitions = cast("dict[bytes, bytes]", r.hgetall(keys.cron_schedules))
    states = cast("dict[bytes, bytes]", r.hgetall(keys.cron_state))
    paused = set(cast("set[bytes]", r.smembers(keys.cron_paused)))
    found = []
    for raw_name in sorted(definitions):
        definition, problem = _definition(definitions[raw_name])
        state, state_problem = _record(states.get(raw_name, b"{}"), "state")
        job_id = state.get("job_id")
        job_id = job_id if isinstance(job_id, str) and job_id else None
        outcome = state.get("outcome", "not run yet")
        found.append(
            ScheduleStatus(
                name=raw_name.decode("utf-8", "backslashreplace"),
                definition=definition,
                paused=raw_name in paused,
                last_run=_time(state.get("last_run")),
                next_run=_time(state.get("next_run")),
                outcome=problem or state_problem or (outcome if isinstance(outcome, str) else ""),
                job_id=job_id,
                job_status=_job_status(resque, job_id) if job_id else None,
            )
        )
    return found


def _record(data: bytes, what: str) -> tuple[dict[str, Any], str]:
    """A JSON object read from a cron hash, or ``{}`` and why it cannot be read."""
    try:
        value = strict_json.loads(data)
    except strict_json.BadJSON as exc:
        return {}, f"unreadable {what}: {exc}"
    if not isinstance(value, dict):
        return {}, f"unreadable {what}: a JSON {type(value).__name__}, not an object"
    return value, ""


def _definition(data: bytes) -> tuple[dict[str, Any], str]:
    """A published schedule, if it has the shape the leader writes."""
    value, problem = _record(data, "definition")
    if not problem:
        problem = _shape_problem(value)
    return ({}, f"unreadable definition: {problem}") if problem else (value, "")


def _shape_problem(value: dict[str, Any]) -> str:
    """What makes ``value`` not a schedule's published fields; "" if nothing does."""
    for name, given in value.items():
        kinds = _FIELDS.get(name)
        if kinds is None:
            return f"unknown field {name!r}"
        if isinstance(given, bool) or not isinstance(given, kinds):
            return f"{name} is a JSON {type(given).__name__}"
    missing = [name for name in _REQUIRED if name not in value]
    if missing:
        return f"no {', '.join(missing)}"
    if ("cron" in value) == ("every" in value):
        return "it needs exactly one of cron and every"
    if "cron" in value and len(value["cron"].split()) not in (5, 6):
        return f"cron {value['cron']!r} does not have 5 or 6 fields"
    if "every" in value and finite(value["every"]) is None:
        return "every is not a finite number"
    if value.get("misfire", "once") not in _MISFIRE:
        return f"misfire must be one of {', '.join(_MISFIRE)}"
    return ""


def _time(value: Any) -> int | None:
    """An epoch second from a state record; None unless it is one."""
    return value if type(value) is int and 0 <= value < 10**12 else None


def _job_status(resque: Namespace, job_id: str) -> str | None:
    packet = resque.redis.get(resque.keys.status(job_id))
    decoded = None if packet is None else JobStatus.decode(packet)
    return decoded.status.name.lower() if decoded else None


def pause(resque: Namespace, name: str) -> bool:
    """Pause a schedule: its ticks pass without enqueueing. False if it is unknown."""
    if not resque.redis.hexists(resque.keys.cron_schedules, name):
        return False
    resque.redis.sadd(resque.keys.cron_paused, name)
    return True


def resume(resque: Namespace, name: str) -> bool:
    """Resume a paused schedule (no backlog: the ticks it missed stay skipped)."""
    return bool(resque.redis.srem(resque.keys.cron_paused, name))


def cron_view(resque: Namespace) -> dict[str, Any]:
    """pyresque's recurring schedules as the dashboard shows them, and the leader
    holding the lease."""
    schedules = []
    for found in status(resque):
        definition = found.definition
        every = finite(definition.get("every"))
        schedules.append(
            {
                **found.to_dict(),
                "when": definition.get("cron") or (f"every {every:g} s" if every else None),
                "tz": definition.get("tz"),
                "class_name": str(definition.get("job") or ""),
                "queue": definition.get("queue"),
                "args_text": args_text(definition.get("args", [])),
            }
        )
    leader = cast("bytes | None", resque.redis.get(resque.keys.cron_leader))
    return {"leader": None if leader is None else as_text(leader), "schedules": schedules}
