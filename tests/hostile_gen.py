"""Generated hostile queue items and in-flight records, and the check of what real
workers made of them: shared by tests/test_hostile_properties.py (a few examples per
mode) and benchmarks/fuzz.py (the long campaign).

Every generated item or record carries a marker (``~m<n>~``), in its arguments or,
when it is garbage, in its bytes, so that each one is traced to exactly one fate:
it ran (``HostileRecord`` of tests/hostile_jobs.py appends its arguments to
``<ns>:hostile:ran``), or its bytes are in a record of ``failed``. Running twice,
both running and failing, or vanishing are the bugs looked for.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis
from hypothesis import strategies as st

#: The fields a worker interprets, and a few it only carries.
FIELDS: tuple[str, ...] = ("class", "args", "timeout", "retry", "attempts", "crashes", "unique")
FIELDS += ("id", "prefix", "queue_time", "errors", "cron")

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text(alphabet=st.characters() | _SURROGATES, max_size=12)
NUMBERS = (
    st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.sampled_from([0, -1, 1e308, -0.0, 2**63, 2**64 + 1])
)
#: Any JSON value Python's json writes, non-finite numbers and lone surrogates included.
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
#: Values a worker can use in the fields it interprets (a job with them runs).
PLAUSIBLE = st.fixed_dictionaries(
    {},
    optional={
        "timeout": st.floats(min_value=60, max_value=1e8) | st.integers(60, 10**8),
        "retry": st.fixed_dictionaries(
            {"attempts": st.integers(1, 10**6)},
            optional={
                "on": st.lists(st.text(max_size=8), max_size=2),
                "delays": st.lists(st.floats(0, 1e6), max_size=2),
                "backoff": st.fixed_dictionaries({}, optional={"factor": st.floats(0, 1e300)}),
            },
        ),
        "attempts": st.integers(0, 10),
        "crashes": st.integers(0, 1),
        "unique": st.fixed_dictionaries(
            {
                "key": st.text(max_size=8),
                "until": st.sampled_from(["queued", "started", "finished", "ttl"]),
                "token": st.text(max_size=8),
            }
        ),
        "id": st.text(max_size=40),
        "prefix": st.text(max_size=8),
        "queue_time": st.floats(allow_nan=False, allow_infinity=False),
    },
)
#: Garbage that is not JSON at all (or is, by chance).
GARBAGE = st.binary(max_size=64) | st.sampled_from([b"", b"{", b"[" * 5000, b"\xff\xfe"])


def any_json(value: Any) -> bytes:
    """``value`` as any producer might write it with Python's json: NaN, infinities
    and lone surrogates included."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Item:
    """One generated queue item; ``render(marker)`` gives its bytes."""

    fields: dict[str, Any] | None  # None: garbage bytes
    value: Any = None  # the argument after the marker
    depth: int = 0  # nesting added around ``value``
    ascii: bool = True  # Python's ensure_ascii (False writes lone surrogates as bytes)
    garbage: bytes = b""

    def render(self, marker: str) -> bytes:
        if self.fields is None:
            return marker.encode() + self.garbage
        body = {"class": "HostileRecord", "args": [marker, _nest(self.value, self.depth)]}
        body.update(self.fields)
        if isinstance(body["args"], list) and body["args"][:1] != [marker]:
            body["args"] = [marker, *body["args"]]
        body["m"] = marker  # traced even when "args" is not a list
        text = json.dumps(body, ensure_ascii=self.ascii)
        return text.encode("utf-8", "surrogatepass")


def _no_short_timeout(fields: dict[str, Any]) -> dict[str, Any]:
    """A valid timeout of a few seconds could stop HostileRecord on a busy machine (a
    fate the checks do not expect): move such values out of that range."""
    value = fields.get("timeout")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 60:
        fields["timeout"] = value + 60
    return fields


def items() -> st.SearchStrategy[Item]:
    """A queue item: a payload with any value in any field, deep or not, or garbage."""
    payload = st.builds(
        Item,
        fields=st.one_of(
            st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3).map(_no_short_timeout),
            PLAUSIBLE,
        ),
        value=JSON,
        depth=st.sampled_from([0, 0, 0, 1, 50, 99, 101, 150, 400]),
        ascii=st.booleans(),
    )
    garbage = st.builds(Item, fields=st.none(), garbage=GARBAGE)
    return st.one_of(payload, payload, payload, garbage)  # mostly payloads


@dataclass(frozen=True)
class Record:
    """One generated in-flight record of a dead worker."""

    item: Item  # the payload it holds
    shape: str  # "good", or how the record itself is broken
    junk: Any = None  # a hostile value for the broken field

    def render(self, marker: str) -> bytes:
        payload = self.item.render(marker).decode("utf-8", "surrogateescape")
        good: dict[str, Any] = {"queue": "default", "payload": payload, "claimed_at": 1}
        if self.shape == "good":
            # As claim.lua writes it: cjson copies the payload's bytes as they are.
            return json.dumps(good, ensure_ascii=False).encode("utf-8", "surrogateescape")
        broken: Any = {
            "no queue": {"payload": payload},
            "bad queue": {**good, "queue": self.junk},
            "bad payload": {**good, "payload": self.junk},
            "deep": {**good, "deep": _nest(self.junk, 120)},
            "not an object": [self.junk],
        }.get(self.shape)
        if broken is None:  # garbage
            return marker.encode() + b"garbage" + json.dumps(self.junk).encode()
        if isinstance(broken, dict):
            broken["m"] = marker
        else:
            broken.append(marker)
        return json.dumps(broken).encode()


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


SHAPES: tuple[str, ...] = ("good", "good", "good", "no queue", "bad queue", "bad payload")
SHAPES += ("deep",)
SHAPES += ("not an object", "garbage")


def records() -> st.SearchStrategy[Record]:
    junk = JSON.filter(lambda v: not isinstance(v, str))  # a string would be a good field
    return st.builds(Record, item=items(), shape=st.sampled_from(SHAPES), junk=junk)


# --- what the workers made of them ----------------------------------------------------------

_MARKERS = itertools.count()


def marker() -> str:
    """A fresh marker: no marker is a substring of another (``~m1~`` / ``~m12~``)."""
    return f"~m{next(_MARKERS)}~"


class Ledger:
    """Reads a namespace's ``hostile:ran`` and ``failed`` lists incrementally."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.r = client
        self.ns = namespace
        self.ran: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.exceptions: Counter[str] = Counter()
        self._seen_ran = self._seen_failed = 0

    def read(self) -> None:
        ran = cast("list[bytes]", self.r.lrange(f"{self.ns}:hostile:ran", self._seen_ran, -1))
        self._seen_ran += len(ran)
        for entry in ran:
            self.ran[str(json.loads(entry)[0])] += 1
        failed = cast("list[bytes]", self.r.lrange(f"{self.ns}:failed", self._seen_failed, -1))
        self._seen_failed += len(failed)
        for raw in failed:
            found = set(_marker_in(raw))
            for mark in found:
                self.failed[mark] += 1
            self.exceptions[str(json.loads(raw).get("exception"))] += 1

    def fate(self, mark: str) -> str:
        runs, fails = self.ran[mark], self.failed[mark]
        if (runs, fails) == (1, 0):
            return "ran"
        if (runs, fails) == (0, 1):
            return "failed"
        return "pending" if runs + fails == 0 else f"BAD: ran {runs} x, failed {fails} x"


def _marker_in(raw: bytes) -> list[str]:
    """The markers in a failure record's bytes."""
    out = []
    start = raw.find(b"~m")
    while start >= 0:
        end = raw.find(b"~", start + 2)
        if end < 0:
            break
        digits = raw[start + 2 : end]
        if digits.isdigit():
            out.append(f"~m{digits.decode()}~")
        start = raw.find(b"~m", end + 1)
    return out


def settle(
    ledger: Ledger, marks: list[str], alive: Callable[[], bool], timeout: float = 60.0
) -> Counter[str]:
    """Wait until every marker has its fate; fail on a double fate or a dead worker.
    Returns how many ran and how many failed."""
    deadline = time.monotonic() + timeout
    while True:
        ledger.read()
        fates = {mark: ledger.fate(mark) for mark in marks}
        bad = {m: f for m, f in fates.items() if f.startswith("BAD")}
        assert not bad, f"items with more than one fate: {bad}"
        assert alive(), "the worker died"
        if "pending" not in fates.values():
            return Counter(fates.values())
        if time.monotonic() > deadline:
            pending = [m for m, f in fates.items() if f == "pending"]
            raise AssertionError(f"no fate after {timeout} s for {pending}")
        time.sleep(0.02)


def push(client: redis.Redis, namespace: str, queue: str, raws: list[bytes]) -> None:
    """Enqueue as a foreign producer would (and wake the workers)."""
    client.sadd(f"{namespace}:queues", queue)
    client.rpush(f"{namespace}:queue:{queue}", *raws)
    client.rpush(f"{namespace}:pyresque:wake:{queue}", "1")


def plant(client: redis.Redis, namespace: str, ghost: str, inflight: dict[bytes, bytes]) -> None:
    """A dead worker ``ghost`` with these in-flight records, its lease long expired."""
    client.hset(f"{namespace}:pyresque:inflight:{ghost}", mapping=inflight)  # type: ignore[arg-type]
    client.sadd(f"{namespace}:workers", ghost)
    client.zadd(f"{namespace}:pyresque:leases", {ghost: 0})


def run_items(
    client: redis.Redis,
    namespace: str,
    ledger: Ledger,
    batch: list[Item],
    alive: Callable[[], bool],
) -> Counter[str]:
    """Push ``batch`` and a good job after it; wait for every fate (the good job must
    run); return the fates of the batch's items."""
    marks = [marker() for _ in batch]
    sentinel = marker()
    raws = [item.render(mark) for item, mark in zip(batch, marks, strict=True)]
    raws.append(b'{"class":"HostileRecord","args":["%s"]}' % sentinel.encode())
    push(client, namespace, "default", raws)
    fates = settle(ledger, [*marks, sentinel], alive)
    assert ledger.ran[sentinel] == 1, "the good job after the batch did not run"
    fates["ran"] -= 1
    return fates


def run_records(
    client: redis.Redis,
    namespace: str,
    ledger: Ledger,
    found: list[Record],
    alive: Callable[[], bool],
) -> Counter[str]:
    """Plant ``found`` for a dead worker (some tokens not UTF-8); wait for every fate and
    for its in-flight hash to be gone; return the fates."""
    marks = [marker() for _ in found]
    ghost = f"ghost-host:{marks[0].strip('~')}:default"
    inflight = {
        b"t" + mark.encode() + (b"\xff" if i % 3 == 0 else b""): record.render(mark)
        for i, (record, mark) in enumerate(zip(found, marks, strict=True))
    }
    plant(client, namespace, ghost, inflight)
    fates = settle(ledger, marks, alive)
    assert not client.exists(f"{namespace}:pyresque:inflight:{ghost}"), "records left"
    return fates
