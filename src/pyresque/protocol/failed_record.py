"""One record of a ``failed`` list as written (failure.py reads them back), and the
record of a job its queue could not take (recovery.py, a workflow's release): below
failure.py so that workflow.py, which failure.py imports, can write one too."""

from __future__ import annotations

from typing import Any

from pyresque.protocol import foreign_queues
from pyresque.protocol.backtrace import resque_time
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps


def failure_record(
    payload: dict[str, Any] | str,
    exception: str,
    error: str,
    backtrace: list[str],
    worker: str,
    queue: str,
) -> str:
    """A record with resque-web's field set, in Ruby's field order."""
    return dumps(
        {
            "failed_at": resque_time(),
            "payload": payload,
            "exception": exception,
            "error": error,
            "backtrace": backtrace,
            "worker": worker,
            "queue": queue,
        }
    )


def foreign_failure(
    keys: Keys, queue: str, text: str, found: str, worker: str = ""
) -> tuple[str, str | None]:
    """The failure record of job ``text`` (its payload as queued), which ``queue`` cannot
    take: its key holds a ``found`` (foreign_queues.py), and the job's status key (in
    ``keys``'s slot), or None when it has no id."""
    error = foreign_queues.refused(keys.queue(queue), found)
    try:
        payload: Payload | None = Payload.decode(text)
    except ValueError:
        payload = None
    shown = payload.to_dict() if payload else text
    record = failure_record(shown, foreign_queues.FAILURE, error, [], worker, queue)
    status = keys.status(payload.id, payload.prefix) if payload and payload.id else None
    return record, status
