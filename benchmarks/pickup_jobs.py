"""The job of benchmarks/pickup.py: its first step records when it started."""

import jobutil

from pyresque import Job


class PickupStamp(Job):
    def perform(self) -> None:
        jobutil.stamp()
