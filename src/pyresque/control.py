"""Seeing and steering workers on every host, through Redis alone.

``list_workers`` reads what resque-web reads (the ``workers`` set, ``worker:<id>``,
``worker:<id>:started``, per-worker stats, Ruby's heartbeats) plus pyresque's
leases, so Ruby, PHP and pyresque workers show up side by side.
``send_command`` queues a command (quit, term, pause, resume, kill-job) for a
pyresque worker; its heartbeat picks it up within a second, on any host.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, cast

from pyresque.client import Resque
from pyresque.connection import text
from pyresque.worker import COMMANDS


@dataclass
class WorkerInfo:
    id: str
    host: str
    pid: str
    queues: list[str]
    state: str  # working, idle or dead (lease expired)
    started: str | None
    heartbeat: str | None
    processed: int
    failed: int
    job: dict[str, Any] | None  # {"queue", "run_at", "payload"} while working
    pyresque: bool  # holds a lease, so it takes commands

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_workers(resque: Resque) -> list[WorkerInfo]:
    keys, r = resque.keys, resque.redis
    ids = sorted(text(w) for w in cast("set[bytes]", r.smembers(keys.workers)))
    if not ids:
        return []
    pipe = r.pipeline(transaction=False)
    for worker_id in ids:
        pipe.get(keys.worker(worker_id))
        pipe.get(keys.worker_started(worker_id))
        pipe.get(keys.stat("processed", worker_id))
        pipe.get(keys.stat("failed", worker_id))
        pipe.hget(keys.heartbeats, worker_id)
        pipe.zscore(keys.leases, worker_id)
    pipe.time()
    replies = pipe.execute()
    secs, micros = replies[-1]
    now_ms = secs * 1000 + micros // 1000
    workers = []
    for i, worker_id in enumerate(ids):
        current, started, processed, failed, beat, lease = replies[i * 6 : i * 6 + 6]
        host, _, rest = worker_id.partition(":")
        pid, _, queues = rest.partition(":")
        job = _job(current)
        state = "working" if job is not None else "idle"
        if lease is not None and lease < now_ms:
            state = "dead"
        workers.append(
            WorkerInfo(
                id=worker_id,
                host=host,
                pid=pid,
                queues=queues.split(",") if queues else [],
                state=state,
                started=text(started) if started else None,
                heartbeat=text(beat) if beat else None,
                processed=int(processed or 0),
                failed=int(failed or 0),
                job=job,
                pyresque=lease is not None,
            )
        )
    return workers


def _job(current: bytes | None) -> dict[str, Any] | None:
    if not current:
        return None
    try:
        value = json.loads(current)
    except ValueError:
        return {"queue": "?", "run_at": "?", "payload": current.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else None


def send_command(resque: Resque, worker_id: str, command: str) -> bool:
    """Queue ``command`` for a pyresque worker; False if it is not one (no lease)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    if resque.redis.zscore(resque.keys.leases, worker_id) is None:
        return False
    control = resque.keys.control(worker_id)
    pipe = resque.redis.pipeline()
    pipe.rpush(control, command)
    pipe.expire(control, 60)  # a command for a worker that never reads it goes away
    pipe.execute()
    return True
