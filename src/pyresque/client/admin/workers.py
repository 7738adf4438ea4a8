"""Workers: seeing and steering them on every host, through Redis alone.

``list_workers`` reads what resque-web reads (the ``workers`` set, ``worker:<id>``,
``worker:<id>:started``, per-worker stats, Ruby's heartbeats) plus pyresque's
leases, so Ruby, PHP and pyresque workers show up side by side.
``send_command`` queues a command (quit, term, pause, resume, kill-job) for a
pyresque worker; its heartbeat picks it up within a second, on any host.
``workers_page`` is what the dashboard's Workers page and its JSON API show.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, cast

import redis

from pyresque.client.admin.base import ITEM_LIMIT, Namespace, Problems, lengths, members
from pyresque.client.admin.items import args_text, display_class, parse_time
from pyresque.protocol import strict_json
from pyresque.protocol.commands import COMMANDS, pause_all_set
from pyresque.protocol.connection import raw, replies
from pyresque.protocol.counters import counter
from pyresque.protocol.slots import places

#: Workers listed per page of the dashboard's Workers page.
WORKERS_PER_PAGE = 50


@dataclass
class WorkerInfo:
    id: str
    host: str
    pid: str
    queues: list[str]
    state: str  # working, idle, paused or dead (lease expired)
    started: str | None
    heartbeat: str | None
    processed: int
    failed: int
    job: dict[str, Any] | None  # {"queue", "run_at", "payload"} while working
    pyresque: bool  # holds a lease, so it takes commands

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worker_ids(resque: Namespace) -> list[bytes]:
    """Every registered worker's id (its exact bytes), sorted (none when the key is
    not a set)."""
    try:
        return sorted(members(resque.redis, resque.keys.workers))
    except redis.exceptions.ResponseError:  # WRONGTYPE: anyone may write the key
        return []


#: Workers read per round trip: a few multi-key commands and one script per chunk,
#: never a command per worker.
_READ_CHUNK = 200


def list_workers(resque: Namespace, raw_ids: list[bytes] | None = None) -> list[WorkerInfo]:
    """Every registered worker (or those of ``raw_ids``), read 200 per round trip.
    Their records may hold anything (any producer, any bytes): ids that are not UTF-8
    keep ``\\xNN`` escapes, unreadable values read as absent, and a key of the wrong
    Redis type is skipped."""
    raw_ids = worker_ids(resque) if raw_ids is None else raw_ids
    if not raw_ids:
        return []
    pause_all = cast("bytes | None", resque.redis.get(resque.keys.pause_all))
    secs, micros = resque.redis.time()  # (a cluster pipeline refuses TIME: no key)
    now_ms = secs * 1000 + micros // 1000
    workers: list[WorkerInfo] = []
    for start in range(0, len(raw_ids), _READ_CHUNK):
        chunk = raw_ids[start : start + _READ_CHUNK]
        workers += _read(resque, chunk, now_ms, pause_all_set(pause_all))
    return workers


def _records(
    resque: Namespace, ids: list[bytes]
) -> tuple[list[bytes | None], list[int], list[int]]:
    """Each worker's ``worker:<id>`` record and its processed and failed counters. On
    Redis Cluster a worker writes them in the slot of its job's queue (keys.py): the
    record found first over every slot (slots.places), the counters summed."""
    groups = []
    for at in places(resque.redis, resque.keys):
        stat = at.stat("")  # "stat:", then "processed:<id>" / "failed:<id>"
        groups.append(_prefixed(at.worker(""), ids))
        groups.append(_prefixed(f"{stat}processed:", ids))
        groups.append(_prefixed(f"{stat}failed:", ids))
    found = _mgets(resque, groups)
    return (
        [next((job for job in column if job), None) for column in zip(*found[0::3], strict=True)],
        [sum(map(counter, column)) for column in zip(*found[1::3], strict=True)],
        [sum(map(counter, column)) for column in zip(*found[2::3], strict=True)],
    )


def _mgets(resque: Namespace, groups: list[list[bytes]]) -> list[list[Any]]:
    """An MGET of each group of keys (None for a missing key or one of another type), in
    one pipeline; on Cluster an MGET per group (a cluster pipeline refuses MGET; the
    keys of a group are in one slot)."""
    if resque.keys.clustered:
        return [cast("list[Any]", resque.redis.mget(group)) if group else [] for group in groups]
    pipe = resque.redis.pipeline(transaction=False)
    for group in groups:
        pipe.mget(group)
    return [
        reply or [None] * len(group) for reply, group in zip(replies(pipe), groups, strict=True)
    ]


def _id(raw_id: bytes) -> str:
    """An id as text that encodes back to its exact bytes (``_exact``)."""
    return raw_id.decode("utf-8", "surrogateescape")


def _exact(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _prefixed(key: str, ids: list[bytes]) -> list[bytes]:
    """``key`` followed by each id's exact bytes (keys hold the id as it is)."""
    return [raw(key) + i for i in ids]


def _read(resque: Namespace, ids: list[bytes], now_ms: int, all_paused: bool) -> list[WorkerInfo]:
    """The workers of ``ids``: one MGET per kind of record, HMGET, ZMSCORE, and one
    EXISTS per worker inside one script call."""
    keys = resque.keys
    pipe = resque.redis.pipeline(transaction=False)
    pipe.hmget(keys.heartbeats, ids)
    pipe.zmscore(keys.leases, cast("list[str]", ids))  # any bytes: the ids as stored
    found = [reply or [None] * len(ids) for reply in replies(pipe)]
    [started_at] = _mgets(resque, [[_exact(keys.worker_started(_id(i))) for i in ids]])
    jobs, done, failures = _records(resque, ids)
    paused = lengths(resque.redis, _prefixed(keys.paused(""), ids), "EXISTS")
    workers = []
    for i, raw_id in enumerate(ids):
        beat, lease = (column[i] for column in found)
        started = started_at[i]
        current, processed, failed = jobs[i], done[i], failures[i]
        worker_id = _text(raw_id)
        host, _, rest = worker_id.partition(":")
        pid, _, queues = rest.partition(":")
        job = _job(current)
        # A paused worker finishes the job it runs: it shows as working until then.
        state = "working" if job else "paused" if paused[i] or all_paused else "idle"
        if lease is not None and lease < now_ms:
            state = "dead"
        workers.append(
            WorkerInfo(
                id=worker_id,
                host=host,
                pid=pid,
                queues=queues.split(",") if queues else [],
                state=state,
                started=_text(started) if started else None,
                heartbeat=_text(beat) if beat else None,
                processed=processed,
                failed=failed,
                job=job,
                pyresque=lease is not None,
            )
        )
    return workers


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _job(current: bytes | None) -> dict[str, Any] | None:
    """The worker's ``worker:<id>`` record: what it runs, or a stand-in showing the raw
    value when that is not the JSON object Resque writes."""
    if not current:
        return None
    try:
        value = strict_json.loads(current)
    except strict_json.BadJSON:
        value = None
    if isinstance(value, dict):
        return value
    return {"queue": "?", "run_at": "?", "payload": _text(current)}


def send_command(resque: Namespace, worker_id: str, command: str) -> bool:
    """Queue ``command`` for a pyresque worker; False if it is not one (no lease)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    return push_command(resque, worker_id, command)


def push_command(resque: Namespace, worker_id: str, command: str) -> bool:
    """Queue ``command`` (a ``COMMANDS`` name or ``cancel <id>``) for a pyresque
    worker, read by its heartbeat; False if it is not one (no lease)."""
    if resque.redis.zscore(resque.keys.leases, worker_id) is None:
        return False
    control = resque.keys.control(worker_id)
    pipe = resque.redis.pipeline()
    pipe.rpush(control, command)
    pipe.expire(control, 60)  # a command for a worker that never reads it goes away
    pipe.execute()
    return True


def worker_view(worker: WorkerInfo, now: float) -> dict[str, Any]:
    """A worker with its current job decoded and ages computed."""
    view = worker.to_dict()
    view["kind"] = "pyresque" if worker.pyresque else "resque"
    beat = parse_time(worker.heartbeat)
    view["heartbeat_age_seconds"] = max(0.0, now - beat) if beat else None
    view["started_at"] = parse_time(worker.started)
    job = worker.job
    if isinstance(job, dict):
        payload = job.get("payload")
        if isinstance(payload, dict):
            args = payload.get("args", [])
            klass = display_class(str(payload.get("class", "")), args)
            shown = args_text(args)
        else:
            args, klass, shown = [], "", str(payload)
        run_at = parse_time(job.get("run_at"))
        view["job"] = {
            "queue": str(job.get("queue", "")),
            "run_at": job.get("run_at"),
            "run_at_epoch": run_at,
            "running_seconds": max(0.0, now - run_at) if run_at else None,
            "class_name": klass,
            "args": None if len(shown) > ITEM_LIMIT else args,
            "args_text": shown,
            "id": payload.get("id") if isinstance(payload, dict) else None,
        }
    return view


@dataclass
class Census:
    """Every registered worker's id and whether it runs a job, read without a command
    per worker (``busy``: the length of ``worker:<id>``, 200 per call)."""

    ids: list[bytes]
    busy: list[bool]

    @classmethod
    def read(cls, resque: Namespace, problems: Problems) -> Census:
        ids = problems.section("the workers set", partial(worker_ids, resque), list[bytes]())
        if resque.keys.clustered:  # worker:<id> is in the slot of the job's queue
            busy = problems.section(
                "the workers' jobs", partial(_busy_anywhere, resque, ids), [False] * len(ids)
            )
            return cls(ids, busy)
        base = raw(resque.keys.worker(""))
        found = problems.section(
            "the workers' jobs",
            partial(lengths, resque.redis, [base + i for i in ids], "STRLEN"),
            [0] * len(ids),
        )
        return cls(ids, [n > 0 for n in found])

    @property
    def working(self) -> list[bytes]:
        return [i for i, busy in zip(self.ids, self.busy, strict=True) if busy]


def _jobs(resque: Namespace, ids: list[bytes]) -> list[bytes | None]:
    """Each worker's ``worker:<id>`` record, wherever it is (``_records``)."""
    return _records(resque, ids)[0]


def _busy_anywhere(resque: Namespace, ids: list[bytes]) -> list[bool]:
    """Whether each worker has a ``worker:<id>`` record in any slot (Cluster)."""
    return [
        bool(job)
        for start in range(0, len(ids), _READ_CHUNK)
        for job in _jobs(resque, ids[start : start + _READ_CHUNK])
    ]


def workers_page(
    resque: Namespace,
    problems: Problems | None = None,
    start: int = 0,
    per_page: int = WORKERS_PER_PAGE,
) -> dict[str, Any]:
    """A page of workers (by id) grouped by host, with what each runs and since when,
    and the counts of every worker's states."""
    problems = Problems() if problems is None else problems
    now = time.time()
    census = Census.read(resque, problems)
    start = max(0, start)
    shown = census.ids[start : start + per_page]
    found = problems.section(
        "the workers", partial(list_workers, resque, shown), list[WorkerInfo]()
    )
    workers = [worker_view(w, now) for w in found]
    hosts: dict[str, list[dict[str, Any]]] = {}
    for worker in workers:
        hosts.setdefault(worker["host"], []).append(worker)
    working = len(census.working)
    dead = problems.section(resque.keys.leases, partial(_expired, resque), 0)
    return {
        "hosts": [{"host": h, "workers": ws} for h, ws in sorted(hosts.items())],
        "total": len(census.ids),
        "start": start,
        "per_page": per_page,
        "working": working,
        "idle": max(0, len(census.ids) - working - dead),
        "dead": dead,
        "paused_all": problems.section(resque.keys.pause_all, partial(paused_all, resque), False),
        "problems": problems,
    }


def _expired(resque: Namespace) -> int:
    """pyresque workers whose lease expired (dead until recovery takes them off)."""
    secs, micros = resque.redis.time()
    return int(resque.redis.zcount(resque.keys.leases, "-inf", f"({secs * 1000 + micros // 1000}"))


def paused_all(resque: Namespace) -> bool:
    """Whether every worker of the namespace is told to pause (Ruby's flag)."""
    value = resque.redis.get(resque.keys.pause_all)
    return pause_all_set(raw(value) if value is not None else None)


@dataclass
class WorkerStates:
    """How many registered workers are in each state (as ``list_workers`` would show
    them) and how many jobs run per queue, read without a command per worker."""

    states: Counter[str]
    running: Counter[str]  # queue -> jobs running from it

    @classmethod
    def read(cls, resque: Namespace, problems: Problems, census: Census) -> WorkerStates:
        dead = problems.section(
            resque.keys.leases, partial(_expired_ids, resque, set(census.ids)), set[bytes]()
        )
        working = set(census.working)
        busy = [i for i in census.working if i not in dead]
        rest = [i for i in census.ids if i not in dead and i not in working]
        running: Counter[str] = Counter()
        for start in range(0, len(busy), _READ_CHUNK):
            chunk = busy[start : start + _READ_CHUNK]
            jobs = problems.section(
                "the workers' jobs", partial(_jobs, resque, chunk), list[bytes | None]()
            )
            for job in filter(None, map(_job, jobs)):
                running[str(job.get("queue", ""))] += 1
        if problems.section(resque.keys.pause_all, partial(paused_all, resque), False):
            paused = len(rest)
        else:
            flags = problems.section(
                "the workers' paused flags",
                partial(lengths, resque.redis, _prefixed(resque.keys.paused(""), rest), "EXISTS"),
                [0] * len(rest),
            )
            paused = sum(1 for flag in flags if flag)
        states = Counter(working=len(busy), dead=len(dead), paused=paused, idle=len(rest) - paused)
        return cls(states, running)


def _expired_ids(resque: Namespace, registered: set[bytes]) -> set[bytes]:
    """The registered pyresque workers whose lease expired."""
    secs, micros = resque.redis.time()
    now_ms = secs * 1000 + micros // 1000
    expired = resque.redis.zrangebyscore(resque.keys.leases, "-inf", f"({now_ms}")
    return {raw(m) for m in cast("list[bytes]", expired)} & registered
