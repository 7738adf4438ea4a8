"""The job of the chaos run (benchmarks/chaos.py); workers import it with ``--app``.

Each execution of ``ChaosJob(index)`` records itself, in the forked child, through a
fresh Redis connection (``CHAOS_REDIS_URL``, keys under ``CHAOS_NS``):

* ``INCR <ns>:chaos:runs:<index>``: how many times the job ran;
* ``SADD <ns>:chaos:ran <index>``: which jobs ran at least once;
* ``RPUSH <ns>:chaos:starts "<index> <unix time> <worker pid> <child pid>"``.

The three writes are one Lua call guarded by a per-execution id, so retrying it
across a Redis restart (when the reply may have been lost) never counts one
execution twice. Then the job works for a random 0 .. ``CHAOS_JOB_MS`` ms.
"""

from __future__ import annotations

import os
import random
import time
import uuid

import redis

from pyresque import Job

_RECORD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 3600) then
  redis.call('INCR', KEYS[2])
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('RPUSH', KEYS[4], ARGV[2])
end
return 1
"""

#: How long an execution keeps trying to record itself while Redis is away.
RECORD_PATIENCE = 60.0


def record_start(index: int) -> None:
    """Record one execution of job ``index`` (idempotent per execution, retried)."""
    ns = os.environ["CHAOS_NS"]
    execution = uuid.uuid4().hex
    started = time.time()
    line = f"{index} {started:.6f} {os.getppid()} {os.getpid()}"
    keys = [
        f"{ns}:chaos:exec:{execution}",
        f"{ns}:chaos:runs:{index}",
        f"{ns}:chaos:ran",
        f"{ns}:chaos:starts",
    ]
    deadline = time.monotonic() + RECORD_PATIENCE
    delay = 0.05
    while True:
        client = redis.Redis.from_url(
            os.environ["CHAOS_REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )
        try:
            client.eval(_RECORD, len(keys), *keys, index, line)
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            if time.monotonic() >= deadline:
                raise
        finally:
            client.close()
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class ChaosJob(Job):
    """Records its execution, then works for a few milliseconds."""

    def perform(self, index: int) -> int:
        record_start(index)
        work_ms = float(os.environ.get("CHAOS_JOB_MS", "10"))
        if work_ms > 0:
            time.sleep(random.uniform(0, work_ms) / 1000)
        return index
