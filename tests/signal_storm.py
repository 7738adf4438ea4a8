"""Signals at random instants, for code that a signal's handler may cut at any
bytecode: the worker's handlers raise ``Wake`` in the main thread (signals.py)."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import Any

from pyresque.worker.signals import Wake


class Storm:
    """SIGALRM every 0.1 to 3 ms while entered. One raises ``Wake`` when it lands
    inside a call of ``function`` (on the stack) armed by ``arm`` and not cut yet: once
    a call, as signals.py's ``_wake_idle`` raises once per wait."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._code: CodeType = function.__code__
        self._armed = False
        self._on = False
        self._previous: Any = None
        self.raised = 0  # calls cut

    def arm(self) -> None:
        self._armed = True

    def __enter__(self) -> Storm:
        self._on = True
        self._previous = signal.signal(signal.SIGALRM, self._handle)
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._on = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._on:
            signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.003))
        if self._armed and self._inside(frame):
            self._armed = False
            self.raised += 1
            raise Wake

    def _inside(self, frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is self._code:
                return True
            frame = frame.f_back
        return False
