"""On Redis Cluster, the stored results a workflow's call asks for. A step that takes its
dependencies' results (``pass_result``) and depends on a job that already succeeded gets
that job's stored result, as on a single Redis; but its result record is in its queue's
slot, which wf_enqueue.lua (in the home slot) cannot read. So the call, finding such a
dependency, writes nothing and asks for it (``results``, then id and queue pairs); the
producer reads those records in their slots and makes the same call again with them
(``spec.res``), which validates each as the single-Redis call does (a record no worker
could take gives null). Nothing is written until every value is known, so no step can
start before its argument is: a producer killed in between has written nothing.
A dependency that ends between the two calls is asked for in turn (its result record
is written, in its finish, before its end reaches the home slot)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis

from pyresque.protocol import strict_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import dumps

Run = Callable[[list[Any]], tuple[Any, bool]]


def asked(reply: Any) -> list[tuple[str, str]]:
    """The (dependency id, its queue) pairs that wf_enqueue.lua's reply asks results
    for; [] for any other reply."""
    if not isinstance(reply, list) or not reply or reply[0] not in (b"results", "results"):
        return []
    text = [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in reply[1:]]
    return list(zip(text[0::2], text[1::2], strict=False))


def result_keys(keys: Keys, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Each asked dependency's result record, in its queue's slot."""
    return [keys.for_queue(queue).result(job_id) for job_id, queue in pairs]


def given(args: list[Any], pairs: Sequence[tuple[str, str]], values: Sequence[Any]) -> list[Any]:
    """wf_enqueue.lua's ARGV with the records read for ``pairs`` (``values``: bytes, or
    None for none) appended, their ARGV indexes in ``spec.res`` (0: none)."""
    args = list(args)
    spec = strict_json.loads(args[0])  # the spec client/workflows.py wrote
    res = spec.setdefault("res", {})
    for (job_id, _), value in zip(pairs, values, strict=True):
        if isinstance(value, bytes):
            args.append(value)
            res[job_id] = len(args)  # ARGV is 1-based; args[0] is ARGV[1]
        else:
            res[job_id] = 0
    args[0] = dumps(spec)
    return args


def run_with_results(
    client: redis.Redis, keys: Keys, args: list[Any], run: Run
) -> tuple[Any, bool]:
    """``run(args)`` (wf_enqueue.lua's call on Cluster), made again with the results it
    asks for until it asks for none: its last reply, and whether that call is durable."""
    reply, durable = run(args)
    while pairs := asked(reply):
        values = []
        for key in result_keys(keys, pairs):
            try:
                values.append(client.get(key))
            except redis.ResponseError:  # a key of another type: anyone may write Redis
                values.append(None)
        args = given(args, pairs, values)
        reply, durable = run(args)
    return reply, durable
