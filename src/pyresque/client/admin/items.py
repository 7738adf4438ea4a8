"""One item of Redis data as the admin layer shows it: a queue element, a time, a class.

Every value here may hold anything (``base``): what cannot be read is shown with
the reason, never raised.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import time
from datetime import datetime
from typing import Any

from pyresque.client.admin.base import ITEM_LIMIT, as_text, shorten
from pyresque.exceptions import MalformedPayload
from pyresque.protocol import strict_json
from pyresque.protocol.payload import Payload

#: ActiveJob's payload class; resque-web shows ``args[0]["job_class"]`` instead.
ACTIVE_JOB_WRAPPER = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"
_UTC_FORMATS = ("%Y/%m/%d %H:%M:%S UTC", "%Y/%m/%d %H:%M:%S", "%a %b %d %H:%M:%S UTC %Y")


def digest(item: bytes) -> str:
    """A short content hash identifying one list element."""
    return hashlib.sha256(item).hexdigest()[:16]


def finite(value: Any) -> float | None:
    """A JSON number as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_time(value: Any) -> float | None:
    """Epoch seconds from the time formats Ruby, php-resque and pyresque write, or None."""
    if not isinstance(value, str):
        return finite(value)
    if not value or len(value) > 64:
        return None
    try:
        return finite(float(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.timestamp() if parsed.tzinfo else calendar.timegm(parsed.timetuple())
    except ValueError:
        pass
    try:  # Ruby's Time#to_s: 2026-01-12 15:23:55 -0500
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        pass
    for fmt in _UTC_FORMATS:  # a zone like EST is ambiguous, so only UTC is parsed
        try:
            return float(calendar.timegm(time.strptime(value.replace("GMT", "UTC"), fmt)))
        except ValueError:
            continue
    return None


def args_text(args: Any) -> str:
    """Job arguments as compact JSON, as the pages show them."""
    return json.dumps(args, ensure_ascii=False, separators=(", ", ": "), default=str)


def display_class(class_name: str, args: Any) -> str:
    """The class a person thinks of: ActiveJob's wrapped job class, else the payload's."""
    if class_name == ACTIVE_JOB_WRAPPER and isinstance(args, list) and args:
        first = args[0]
        if isinstance(first, dict) and isinstance(first.get("job_class"), str):
            return str(first["job_class"])
    return class_name


def decode(item: bytes) -> tuple[Any, str | None]:
    """A Redis value's JSON (``strict_json``), or None and why it is not readable."""
    try:
        return strict_json.loads(item), None
    except strict_json.BadJSON as exc:
        return None, str(exc)


def job_view(
    item: bytes, position: int | None = None, now: float | None = None, queue: bool = False
) -> dict[str, Any]:
    """One queue element as the pages show it (a malformed one says what is wrong);
    with ``queue``, also the ``queue`` field a delayed item carries.

    The arguments of an item bigger than ``ITEM_LIMIT`` are shown as cut text only.
    """
    now = time.time() if now is None else now
    view: dict[str, Any] = {"position": position, "digest": digest(item), "size": len(item)}
    value, problem = decode(item)
    if queue:
        view["queue"] = str(value.get("queue", "")) if isinstance(value, dict) else ""
    try:
        if problem is not None:
            raise MalformedPayload(f"payload: {problem}")
        payload = Payload.from_dict(value)
    except MalformedPayload as exc:
        view.update(
            malformed=str(exc),
            raw=shorten(as_text(item)),
            class_name="",
            payload_class="",
            args=[],
            args_text="",
            id=None,
            prefix="",
            enqueued_at=None,
            age_seconds=None,
            attempts=0,
        )
        return view
    huge = len(item) > ITEM_LIMIT
    enqueued = finite(payload.queue_time)
    view.update(
        malformed=None,
        class_name=display_class(payload.class_name, payload.args),
        payload_class=payload.class_name,
        args=None if huge else payload.args,
        args_text=shorten(as_text(item)) if huge else args_text(payload.args),
        id=payload.id,
        prefix=payload.prefix,
        enqueued_at=enqueued,
        age_seconds=max(0.0, now - enqueued) if enqueued else None,
        attempts=payload.attempts,
    )
    return view
