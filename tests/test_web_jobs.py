"""A job for the dashboard tests' subprocess worker (imported with ``--app``); no tests here."""

from __future__ import annotations

import os
import time

import redis

from pyresque import Job


class GenerateReport(Job):
    """Runs until the test pushes to the list named by ``PYRESQUE_WEB_TEST_RELEASE``."""

    def perform(self) -> None:
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        deadline = time.monotonic() + 60
        try:  # short waits: a client's socket timeout may be shorter than a long BLPOP
            while time.monotonic() < deadline:
                if client.blpop([os.environ["PYRESQUE_WEB_TEST_RELEASE"]], 1):
                    return
        finally:
            client.close()
