"""Job payloads: the JSON that sits on ``queue:<name>``.

Two dialects exist (spec section 2). Ruby writes ``{"class","args"}`` with
``args`` the positional argument list. php-resque writes
``{"class","args":[<data>],"id","prefix","queue_time"}``: the data is wrapped
in a one-element list. We read both and write php-resque's shape by default.
JSON only, compact, UTF-8; never pickle.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pyresque.exceptions import MalformedPayload
from pyresque.protocol import strict_json


class Dialect(str, Enum):
    """Which producer's payload shape to write."""

    PHP = "php"  # {"class","args","id","prefix","queue_time"}: status tracking works
    RUBY = "ruby"  # {"class","args"}: byte-identical to Ruby's Resque.enqueue


def _reject(value: object) -> Any:
    raise TypeError(
        f"job arguments must be JSON-serialisable, but {value!r} "
        f"(type {type(value).__name__}) is not; convert it to str, int, float, bool, "
        "None, list or dict before enqueueing"
    )


# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_reject
)


_ESCAPE = json.encoder.encode_basestring  # the C one, as ``_ENCODER`` picks it


def _c_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without its Python layers: the C encoder it makes on every
    call, made here directly with the same options (a payload's ``encode`` took 3.9 µs,
    this 2.4: issue 12's enqueue_many). ``_ENCODER.encode`` itself where the C
    accelerator is missing or takes other arguments (another Python)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode

    def encode(value: Any) -> str:
        return "".join(make({}, _reject, _ESCAPE, None, ":", ",", False, False, False)(value, 0))

    sample = {"a/é": [1, 2.5, None, True, {"": -0.0}], 3: "\u2028\n"}
    try:
        return encode if encode(sample) == _ENCODER.encode(sample) else _ENCODER.encode
    except TypeError:  # another signature
        return _ENCODER.encode


_encode = _c_encode()


def dumps(value: Any) -> str:
    """Compact JSON as Ruby's ``json`` gem writes it (raw UTF-8, ``/`` unescaped).

    Raises ``TypeError`` naming the offending value when something is not JSON.
    """
    try:
        return _encode(value)
    except ValueError as exc:  # NaN / Infinity, circular references
        bad = _non_finite(value)
        reason = f"{bad!r} is not a JSON number" if bad is not None else str(exc)
        raise TypeError(f"job arguments must be valid JSON, but {reason}") from exc


def _non_finite(value: Any, seen: set[int] | None = None) -> float | None:
    """The first NaN or infinity inside ``value``, if any (circular references are skipped)."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if not isinstance(value, (list, tuple, dict)):
        return None
    seen = seen if seen is not None else set()
    if id(value) in seen:
        return None
    seen.add(id(value))
    for item in value.values() if isinstance(value, dict) else value:
        found = _non_finite(item, seen)
        if found is not None:
            return found
    return None


#: Decimals of ``queue_time`` (php-resque's ``microtime(true)``).
QUEUE_TIME_DIGITS = 6


#: Job ids are cut from one ``os.urandom`` call of this many (a system call per job
#: was a tenth of ``enqueue_many``'s client CPU: issue 12).
IDS_PER_DRAW = 128

_ids: Iterator[str] = iter(())  # the ids drawn and not handed out yet


def new_job_id() -> str:
    """32 lowercase hex characters (16 random bytes), like php-resque's ``md5(uniqid())``."""
    global _ids
    for job_id in _ids:  # next() on a list iterator is atomic: no id goes to two threads
        return job_id
    drawn = os.urandom(16 * IDS_PER_DRAW).hex()
    ids = [drawn[i : i + 32] for i in range(0, len(drawn), 32)]
    _ids = iter(ids[1:])
    return ids[0]


def _forget_ids() -> None:
    """In a forked child: the ids drawn before the fork are its parent's."""
    global _ids
    _ids = iter(())


os.register_at_fork(after_in_child=_forget_ids)

#: Below this, ``_micros`` multiplies (exact to the microsecond) rather than rounds.
_MICROS_EXACT = 2.0**53 / 1e6


def _micros(seconds: Any) -> Any:
    """``seconds`` rounded to ``QUEUE_TIME_DIGITS`` decimals. ``round(x, 6)`` goes through
    a decimal string (0.7 µs a job); a positive float time as producers write it (under
    2**53 microseconds) is rounded as a count of microseconds: the same value, but at a tie
    of the seventh decimal, where it may differ by one microsecond. An int stays an
    int, as ``round`` keeps it."""
    if type(seconds) is float and 0 < seconds < _MICROS_EXACT:
        return round(seconds * 1e6) / 1e6
    return round(seconds, QUEUE_TIME_DIGITS)


#: The fields ``Payload`` holds as attributes; any other goes to ``extra``.
_KNOWN = frozenset({"class", "args", "id", "prefix", "queue_time"})


@dataclass(slots=True)
class Payload:
    """A decoded job payload. ``extra`` keeps fields we do not interpret."""

    class_name: str
    args: list[Any]
    id: str | None = None
    prefix: str = ""
    queue_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        class_name: str,
        args: list[Any],
        dialect: Dialect = Dialect.PHP,
        job_id: str | None = None,
        prefix: str = "",
    ) -> Payload:
        if dialect is Dialect.RUBY and job_id is None:
            return cls(class_name, args)
        return cls(class_name, args, job_id or new_job_id(), prefix, time.time_ns() // 1000 / 1e6)

    @property
    def data(self) -> Any:
        """What php-resque hands a job as ``$this->args``: the first argument, or None."""
        return self.args[0] if self.args else None

    @property
    def attempts(self) -> int:
        """Earlier deliveries of this job that did not succeed (crashes and retries)."""
        value = self.extra.get("attempts", 0)
        return value if isinstance(value, int) else 0

    @property
    def crashes(self) -> int:
        """Deliveries of this job that ended with its worker dying."""
        value = self.extra.get("crashes", 0)
        return value if isinstance(value, int) else 0

    def to_dict(self) -> dict[str, Any]:
        """Fields in the order the producers write them: class, args, id, prefix, queue_time."""
        out: dict[str, Any] = {"class": self.class_name, "args": self.args}
        if self.id is not None:
            out["id"] = self.id
            out["prefix"] = self.prefix
            if self.queue_time is not None:
                # Microseconds, as php-resque writes it: Ruby (Oj) reads a float of 17
                # significant digits back as a BigDecimal, and writes it as a string.
                out["queue_time"] = _micros(self.queue_time)
        out.update(self.extra)
        return out

    def encode(self) -> str:
        """``dumps(self.to_dict())``. The shape producers write (a str class, id and
        prefix, a time as ``Payload.build`` makes it, no other field) is put together
        here around the arguments' JSON, the same text: the whole dict through the C
        encoder cost ~10 µs more, run cold, on each job's way to its worker (an idle
        producer's enqueue: docs/scaling.md, "Cold code")."""
        queue_time, job_id, prefix = self.queue_time, self.id, self.prefix
        if (
            self.extra
            or type(queue_time) is not float
            or not 0 < queue_time < _MICROS_EXACT  # as _micros' own fast way: finite
            or type(job_id) is not str
            or type(prefix) is not str
            or type(self.class_name) is not str
        ):
            return dumps(self.to_dict())
        name, args, at = _ESCAPE(self.class_name), dumps(self.args), _micros(queue_time)
        return (
            f'{{"class":{name},"args":{args},"id":{_ESCAPE(job_id)},'
            f'"prefix":{_ESCAPE(prefix)},"queue_time":{at!r}}}'
        )

    @classmethod
    def from_dict(cls, item: Any) -> Payload:
        """Validate a decoded JSON value as a job payload."""
        if not isinstance(item, dict):
            raise MalformedPayload(
                f"a job payload must be a JSON object, got {type(item).__name__}"
            )
        klass = item.get("class")
        if not isinstance(klass, str) or not klass:
            raise MalformedPayload(
                'payload has no "class" string naming the job to run'
                if klass is None
                else f'payload "class" must be a non-empty string, got {klass!r}'
            )
        args = item.get("args", [])
        if not isinstance(args, list):
            raise MalformedPayload(
                f'payload "args" must be a JSON list of arguments, got {type(args).__name__}'
            )
        job_id = item.get("id")
        prefix = item.get("prefix") or ""
        # Positional, and no comprehension when there is nothing extra (the usual case):
        # an idle worker runs this cold, where each step costs ~10 times (scaling.md).
        return cls(
            klass,
            args,
            str(job_id) if job_id not in (None, "") else None,
            prefix if isinstance(prefix, str) else "",
            finite_float(item.get("queue_time")),
            {} if item.keys() <= _KNOWN else {k: v for k, v in item.items() if k not in _KNOWN},
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Payload:
        """Parse a queue element under the one decoding policy (strict_json); raise
        ``MalformedPayload`` saying exactly what is wrong, and in which field."""
        try:
            item = strict_json.loads(raw)
        except strict_json.BadJSON as exc:
            field = _bad_field(raw)
            where = f'bad payload field "{field}"' if field else "bad payload"
            raise MalformedPayload(f"{where}: {exc}") from None
        return cls.from_dict(item)


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float if it is a JSON number that has one, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double's range
        return None
    return number if math.isfinite(number) else None


def _bad_field(raw: bytes | str) -> str | None:
    """The top-level field of a rejected payload that holds what the policy refuses, when
    Python's lenient parser can tell (only on this error path, so its cost is no concern)."""
    try:
        item = json.loads(raw)
        if not isinstance(item, dict):
            return None
        for name, value in item.items():
            try:
                strict_json.loads(json.dumps(value))
            except (strict_json.BadJSON, ValueError):
                return str(name)
    except (ValueError, RecursionError):  # not JSON at all, or too deep for Python's parser
        pass
    return None
