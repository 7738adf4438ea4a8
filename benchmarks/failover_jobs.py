"""The job of the failover run (benchmarks/failover.py); workers import it with ``--app``.

``FailoverJob(index)`` appends one line, ``<index> <unix time> <pid>``, to the file
named by ``FAILOVER_RUNS`` (one ``os.write`` on an ``O_APPEND`` file, so lines never
mix), then works for 0 .. ``FAILOVER_JOB_MS`` ms, so that some jobs are running when
the master dies. It writes nothing to Redis: what a failover loses there cannot hide
a run.
"""

from __future__ import annotations

import os
import random
import time

from pyresque import Job


class FailoverJob(Job, name="FailoverJob"):
    def perform(self, index: int) -> None:
        line = f"{index} {time.time():.6f} {os.getpid()}\n".encode()
        fd = os.open(os.environ["FAILOVER_RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        time.sleep(random.uniform(0, int(os.environ.get("FAILOVER_JOB_MS", "20")) / 1000))
