"""A finished job's result record (``<ns>:pyresque:result:<id>``), for jobs that ask
for one (``Job.store_result``, ``enqueue(..., result_ttl=)``).

The finish call writes it (lib_finish.lua), in the same atomic step that records the
job's end, then pushes one element to ``<ns>:pyresque:result-ready:<id>``, which
waiters block on (``BLMOVE`` of the list onto itself: every waiter wakes, and the
element stays for a waiter that comes later). Both keys expire after the TTL.
Anyone may write the key, so reading it never trusts it (``ResultRecord.decode``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyresque.protocol import strict_json
from pyresque.protocol.payload import dumps

#: How long a result is kept when the job or the enqueue names no TTL: one day.
DEFAULT_RESULT_TTL = 86400

_STATES = ("ok", "failed", "cancelled")

#: The longest TTL a payload may ask for (~10 years); Redis's own limit is far above.
MAX_RESULT_TTL = 315_360_000


@dataclass(frozen=True)
class ResultRecord:
    """``status`` is ``ok`` (``value`` is the job's return value), ``failed``
    (``exception``, ``error`` and ``backtrace`` describe the final failure) or
    ``cancelled`` (``Resque.cancel`` took it before it ran, or stopped it)."""

    status: str
    value: Any = None
    exception: str = ""
    error: str = ""
    backtrace: list[str] = field(default_factory=list)

    @staticmethod
    def ok_json(value_json: str) -> str:
        """The record of a success whose value is already JSON text (no re-encoding)."""
        return '{"status":"ok","value":' + value_json + "}"

    @staticmethod
    def failed_json(exception: str, error: str, backtrace: list[str]) -> str:
        return dumps(
            {"status": "failed", "exception": exception, "error": error, "backtrace": backtrace}
        )

    @staticmethod
    def cancelled_json() -> str:
        return '{"status":"cancelled"}'

    @classmethod
    def decode(cls, raw: bytes | str) -> ResultRecord:
        """The record in ``raw``; ``ValueError`` saying what is wrong when it is not one."""
        try:
            record = strict_json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"the stored result is not JSON ({exc})") from None
        if not isinstance(record, dict) or record.get("status") not in _STATES:
            raise ValueError(
                'the stored result is not a record with "status" ok, failed or cancelled'
            )
        if record["status"] != "failed":
            return cls(record["status"], record.get("value"))
        exception, error = record.get("exception"), record.get("error")
        backtrace = record.get("backtrace")
        if not (
            isinstance(exception, str)
            and isinstance(error, str)
            and isinstance(backtrace, list)
            and all(isinstance(line, str) for line in backtrace)
        ):
            raise ValueError("the stored failure's exception, error or backtrace is malformed")
        return cls("failed", None, exception, error, backtrace)


def valid_ttl(value: Any) -> bool:
    """Whether ``value`` is a TTL a payload may carry: whole seconds, 1 to the maximum."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_RESULT_TTL


def ttl_for(store: bool, ttl: int | None) -> int:
    """The TTL of a job's result: ``ttl``, else the default when ``store``; 0: not stored."""
    return ttl or (DEFAULT_RESULT_TTL if store else 0)
