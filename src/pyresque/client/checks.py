"""What a producer may enqueue: checked at the call, before anything is written.

A job that no worker could ever take must fail where it is enqueued, with a
message saying what to change, not sit in Redis or fail far away. The checks:

* **Queue names** that a worker's ``QUEUE`` list can never name exactly: empty,
  longer than ``MAX_QUEUE_NAME`` characters, or holding a ``,`` (the separator),
  a glob character (``* ? [ ] { }``), a leading ``!`` (an exclusion), whitespace
  or characters that are not printable (control and format characters, lone
  surrogates, unassigned code points). Valid names are remembered, so the check of a name
  already seen is one set lookup.
* **The job**: a ``Job`` class, an ``@job`` function or a non-empty class name.
* **Arguments**: a list (or tuple) of positional arguments.
* **The encoded payload** (``wire``): UTF-8 (no lone surrogate anywhere: class,
  arguments, dict keys) and nested at most ``MAX_PAYLOAD_DEPTH`` levels, so that
  the records that wrap a payload (failure and worker records) stay within the
  depth every reader accepts (``strict_json.MAX_DEPTH``). Values that are not JSON are refused by
  ``payload.dumps`` when the payload is encoded.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pyresque.jobs.job import Job, JobFunction
from pyresque.protocol import strict_json
from pyresque.protocol.results import MAX_RESULT_TTL, valid_ttl

#: Longest queue name accepted, in characters.
MAX_QUEUE_NAME = 256

#: Deepest nesting of an encoded payload (its object and the ``args`` list count):
#: failure records and worker records add a level around it; readers take 100.
MAX_PAYLOAD_DEPTH = strict_json.MAX_DEPTH - 4

# Characters a worker's QUEUE list gives a meaning to, and what each one means there.
_QUEUE_SYNTAX = {",": "separates queue names", **dict.fromkeys("*?[]{}", "is a glob pattern")}
_BAD_IN_QUEUE = re.compile(r"[,*?\[\]{}\s]")

# Queue names known to be valid (bounded: names are few, but never grow without end).
_valid_queues: set[str] = set()
_MAX_REMEMBERED = 4096


def check_queue(name: object) -> str:
    """``name`` if workers can name it; else a ``TypeError``/``ValueError`` saying why."""
    if type(name) is str and name in _valid_queues:
        return name
    if not isinstance(name, str):
        raise TypeError(f"a queue name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("a queue name is required")
    if len(name) > MAX_QUEUE_NAME:
        raise ValueError(f"queue name is {len(name)} characters long; use at most {MAX_QUEUE_NAME}")
    if name.startswith("!"):
        raise ValueError(
            f"queue name {name!r} starts with '!', which a worker's QUEUE list reads as an "
            "exclusion; choose a name without it"
        )
    bad = _BAD_IN_QUEUE.search(name)
    if bad or not name.isprintable():
        char = bad.group() if bad else ""
        what = "whitespace" if char.isspace() else repr(char) if char else "unprintable characters"
        meaning = _QUEUE_SYNTAX.get(char, "cannot be written in a worker's QUEUE list")
        raise ValueError(
            f"queue name {name!r} contains {what}, which {meaning}; "
            "use letters, digits and - _ . : only"
        )
    if len(_valid_queues) < _MAX_REMEMBERED:
        _valid_queues.add(name)
    return name


def check_job(job: object) -> None:
    """Raise unless ``job`` names a job: a Job class, an ``@job`` function or a class name."""
    if isinstance(job, str):
        if not job.strip():
            raise ValueError("the job class name is empty; give the class to run")
        if job != job.strip() or not job.isprintable():
            raise ValueError(
                f"job class name {job!r} has whitespace at its ends or unprintable "
                "characters; give the class name exactly"
            )
        return
    if isinstance(job, JobFunction) or (isinstance(job, type) and issubclass(job, Job)):
        return
    raise TypeError(
        f"the job must be a Job subclass, an @job function or a class name string, got {job!r}"
    )


def check_args(args: object) -> list[Any]:
    """The positional argument list (a tuple becomes a list); TypeError for anything else."""
    if isinstance(args, list):
        return args
    if isinstance(args, tuple):
        return list(args)
    raise TypeError(
        f"args must be a list of the job's positional arguments, got {type(args).__name__}; "
        "wrap a single value as [value], or use Resque.enqueue(queue, job, value)"
    )


def check_result_ttl(ttl: object) -> None:
    """Raise unless ``ttl`` is 0 (not asked for) or a TTL a worker accepts (results.py)."""
    if ttl != 0 and not valid_ttl(ttl):
        raise ValueError(
            f"result_ttl must be whole seconds from 1 to {MAX_RESULT_TTL}, got {ttl!r}"
        )


def check_timeout(timeout: object) -> None:
    """Raise unless ``timeout`` is None or a positive, finite number of seconds."""
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


def wire(encoded: str) -> bytes:
    """An encoded payload as the bytes Redis stores; ValueError if no worker could read it."""
    try:
        data = encoded.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = encoded[exc.start : exc.start + 1]
        raise ValueError(
            f"the job holds a lone UTF-16 surrogate ({bad!r}), which is not valid Unicode; "
            "fix the string (e.g. decode its bytes with errors='replace')"
        ) from None
    # Counting brackets is cheap; only a payload that could nest too deeply is scanned.
    if data.count(b"[") + data.count(b"{") > MAX_PAYLOAD_DEPTH:
        depth = strict_json.depth(data)
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(
                f"the job payload nests {depth} levels deep (its object and args list "
                f"count); at most {MAX_PAYLOAD_DEPTH} can be read back: flatten the arguments"
            )
    return data
