"""The worker's process title, Resque's procline: ``resque-<version>: <what it does>``."""

from __future__ import annotations

import os

import setproctitle

from pyresque.version import __version__


class Procline:
    """Sets the process title. ``RESQUE_PROCLINE_PREFIX`` is read once, as the worker
    starts: read per title, ``os.environ`` cost an idle worker ~10 µs on the way to each
    job's first line (Python run cold, docs/scaling.md "Cold code")."""

    def __init__(self) -> None:
        self._start = f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque-{__version__}: "

    def __call__(self, text: str) -> None:
        setproctitle.setproctitle(self._start + text)
