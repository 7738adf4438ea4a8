"""What a processor needs of its worker: the processor is typed against this, not
against ``Worker``, so that the worker imports the processor and not the reverse
(no import cycle, not even for type checking)."""

from __future__ import annotations

from typing import Protocol

from pyresque.client.resque import Resque
from pyresque.executors.base import Stop
from pyresque.middleware.worker_chain import WorkerChain
from pyresque.protocol.running import RunningMarker
from pyresque.worker.handoff import Handoff
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.options import WorkerOptions
from pyresque.worker.queue_list import QueueList, Resolution
from pyresque.worker.recovery import Recovery
from pyresque.worker.running_jobs import RunningJobs
from pyresque.worker.wake_wait import WakeWait


class Host(Protocol):
    """The worker as its processors see it (worker.py)."""

    resque: Resque
    id: str
    queues: QueueList
    resolution: Resolution  # its queues resolved, shared by its processors
    lease_ms: int
    options: WorkerOptions
    paused: bool
    heartbeat: Heartbeat  # its paused_all: Ruby's pause-all-workers, read each beat
    shutting_down: bool
    handoff: Handoff | None
    stop: Stop
    running_marker: RunningMarker
    recovery: Recovery
    middleware: WorkerChain
    running_jobs: RunningJobs
    waits: WakeWait  # the processors' waits on wake-up lists, shared

    def lease_ok(self) -> bool: ...

    def working(self) -> bool: ...

    def title(self, text: str) -> None: ...

    def hold(self, token: str) -> str: ...

    def release(self, token: str) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def give_back_orphans(self, all_jobs: bool = False, crashed: bool = False) -> int: ...

    def landing(self, change: int) -> None: ...

    def give_back_unreplicated(self) -> None: ...

    def count(self, ok: bool) -> None: ...
