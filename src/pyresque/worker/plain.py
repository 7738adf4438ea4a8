"""The plain finish of a landed job, without a script (landing.py): which jobs may
have one, and its status write (its commands go packed: protocol/packed.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol import strict_json
from pyresque.protocol.payload import Payload
from pyresque.protocol.status import Status

#: Resque's counters of plain finishes are written at most this often (seconds).
STATS_EVERY = 1.0

#: A finished state's status packet expires after this (php-resque's 24 hours).
STATUS_TTL = 86400


def plain(work: Work, plan: FinishPlan, refused: Payload | None) -> bool:
    """Whether a job's finish is only its count and its status: it succeeded, and no
    retry, unique lock, limit slot, stored result or workflow step is to be written."""
    if plan.outcome != "ok" or refused is not None or work.payload is None:
        return False
    return not (plan.retry_item or plan.lock or plan.held.slots or plan.result_ttl) and (
        plan.workflow is None and not plan.report
    )


#: A job's status key, its result (JSON), and its status's ``started`` (JSON) when the
#: RUNNING marker read it (mark_running.lua), else None.
StatusWrite = tuple[str, str, "str | None"]


def complete(status: StatusWrite) -> tuple[Any, ...]:
    """A tracked job's COMPLETE packet as ``SET ... XX GET``: nothing for a job that is
    not tracked (no key). Its ``started`` is the marker's, or, for a job that ended
    before the marker showed it, unknown yet (``status_after``)."""
    finished = packet(Status.COMPLETE, status[2] or "null", status[1])
    return ("SET", status[0], finished, "XX", "GET", "EX", STATUS_TTL)


def status_after(client: redis.Redis, status: StatusWrite, old: bytes, ours: bool) -> None:
    """A tracked job's packet, after ``SET ... GET`` replaced it: ``started`` carried
    over when it was not known (as lib_status.lua does), or, for a fenced finish, the
    old packet back."""
    if not ours:
        client.set(status[0], old, xx=True)
        return
    if status[2] is not None:
        return
    try:
        started = strict_json.loads(old).get("started")
    except (ValueError, AttributeError):  # BadJSON, bytes that are not UTF-8, not an object
        started = None  # not a packet: as lib_status.lua, started is null
    if started is not None:
        fixed = packet(Status.COMPLETE, json.dumps(started), status[1])
        client.set(status[0], fixed, xx=True, keepttl=True)


def packet(code: int, started: str, result: str) -> str:
    """A finished job's php-resque status packet (lib_status.lua writes the same)."""
    now = int(time.time())
    return f'{{"status":{int(code)},"updated":{now},"started":{started},"result":{result}}}'
