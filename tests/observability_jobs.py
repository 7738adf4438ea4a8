"""Jobs for the observability tests (tests/test_logs.py, tests/test_tracing.py).

Real worker processes import this file with ``--app``; the tests never import it.
Each job logs through the standard ``logging`` module, as application code does,
so the tests can read which job each line of the worker's log belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from pyresque import Job

log = logging.getLogger("userapp")


class LogSync(Job):
    def perform(self) -> None:
        log.info("sync says %s", self.args["word"])


class LogAsync(Job):
    async def perform(self) -> None:
        await asyncio.sleep(0)
        log.info("async says %s", self.args["word"])

        async def helper() -> None:  # a task the job starts sees the job's fields too
            log.info("task says %s", self.args["word"])

        await asyncio.create_task(helper())


class LogFails(Job):
    def perform(self) -> None:
        log.warning("about to fail")
        raise ValueError("failing on purpose")


def _in_another_thread() -> None:
    log.info("a thread the job did not start")  # no job context there


threading.Thread(target=_in_another_thread).start()
