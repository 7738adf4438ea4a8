"""A running job's progress (``Job.progress``) and checkpoints (``Job.checkpoint``),
as stored under ``<ns>:pyresque:progress:<id>`` and ``<ns>:pyresque:checkpoint:<id>``.

Redis-free, because job children (fork mode's zygote) encode them: the child sends
the encoded text to the worker, whose writer thread (reports.py) stores it. Anyone
may write the keys, so reading never trusts them (``Progress.decode``,
``load_checkpoint``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pyresque.protocol import strict_json
from pyresque.protocol.payload import dumps

#: How long a job's progress is kept after its last report (seconds): one day.
PROGRESS_TTL = 86400
#: How long a checkpoint is kept after it was saved (seconds): a week, for a job that
#: waits long in its queue after a crash. The job's end deletes it.
CHECKPOINT_TTL = 7 * 86400
#: The longest progress message kept (characters); a longer one is cut.
MAX_MESSAGE = 500
#: The largest checkpoint accepted (bytes of JSON): it travels through a pipe and Redis.
MAX_CHECKPOINT = 1 << 20


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``fraction`` from 0.0 to 1.0, what it does (``message``), when
    it said so (``updated``, epoch seconds)."""

    fraction: float
    message: str
    updated: float

    @classmethod
    def decode(cls, raw: bytes | str) -> Progress | None:
        """The record in ``raw``; None when it is not one (never raises)."""
        try:
            record = strict_json.loads(raw)
            fraction, message, updated = record["fraction"], record["message"], record["updated"]
        except (ValueError, KeyError, TypeError):
            return None
        if not (_fraction(fraction) and isinstance(message, str) and _number(updated)):
            return None
        return cls(float(fraction), message[:MAX_MESSAGE], float(updated))

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "message": self.message, "updated": self.updated}


def progress_json(fraction: float, message: str) -> str:
    """The record of a report; ``ValueError``/``TypeError`` saying what is wrong with
    the arguments (raised in the job, where the mistake is)."""
    if not _number(fraction):
        raise TypeError(f"progress must be a number from 0 to 1, not {type(fraction).__name__}")
    if not _fraction(fraction):
        raise ValueError(f"progress must be from 0 to 1, not {fraction!r}")
    if not isinstance(message, str):
        raise TypeError(f"a progress message must be a str, not {type(message).__name__}")
    text = message[:MAX_MESSAGE].encode("utf-8", "backslashreplace").decode()
    return dumps({"fraction": float(fraction), "message": text, "updated": round(time.time(), 3)})


def checkpoint_json(state: Any) -> str:
    """``state`` as JSON (``TypeError``/``ValueError`` when it is not JSON pyresque can
    store and read back, or is over ``MAX_CHECKPOINT`` bytes)."""
    try:
        text = dumps(state)
    except TypeError as exc:
        raise TypeError(f"a checkpoint must be JSON: {exc}") from None
    strict_json.loads(text)  # what would not read back (a lone surrogate, too deep)
    if len(text.encode()) > MAX_CHECKPOINT:
        raise ValueError(f"a checkpoint must be at most {MAX_CHECKPOINT} bytes of JSON")
    return text


def load_checkpoint(raw: bytes | str | None) -> Any:
    """The state a stored checkpoint holds; None when there is none or it is not JSON."""
    if raw is None:
        return None
    try:
        return strict_json.loads(raw)
    except ValueError:
        return None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fraction(value: object) -> bool:
    """A number from 0 to 1 (NaN compares false; no conversion that could overflow)."""
    return _number(value) and 0 <= value <= 1  # type: ignore[operator]
