"""The signal handlers end an idle wait with one ``Wake``: two signals that arrive
together (a ``pause`` then a ``resume`` read from the control list, delivered as USR2
and CONT) must not raise a second ``Wake`` inside the first one's handling, where it
skipped landing.py's give-back and left a landed job on the landing list until
recovery (a full run under load saw the job after a pause and resume never run)."""

from __future__ import annotations

import pytest

from pyresque import Resque
from pyresque.worker.options import WorkerOptions
from pyresque.worker.signals import Wake
from pyresque.worker.worker import Worker


def test_a_second_signal_in_the_same_idle_wait_raises_no_second_wake(rq: Resque) -> None:
    worker = Worker(rq, "q", WorkerOptions(mode="inline"))
    main = worker.processors[0]
    worker._main = main
    main.idle = True  # the main processor waits for a job
    with pytest.raises(Wake):
        worker._on_pause(0, None)
    assert worker.paused
    worker._on_resume(0, None)  # as if still inside the first Wake's except clause
    assert not worker.paused
    main.idle = True  # the next wait: a signal ends it again
    with pytest.raises(Wake):
        worker._on_pause(0, None)
