"""The worker's process title: Resque's procline, with RESQUE_PROCLINE_PREFIX read once,
as the worker starts (read per title, it cost every job's pickup ~10 µs run cold)."""

from __future__ import annotations

import pytest
import setproctitle

from pyresque.version import __version__
from pyresque.worker.procline import Procline


def test_the_title_is_resques_procline_with_the_prefix_read_as_the_worker_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = setproctitle.getproctitle()
    monkeypatch.setenv("RESQUE_PROCLINE_PREFIX", "billing-")
    procline = Procline()
    monkeypatch.setenv("RESQUE_PROCLINE_PREFIX", "changed-")
    try:
        procline("Waiting for mail")
        assert setproctitle.getproctitle() == f"billing-resque-{__version__}: Waiting for mail"
        monkeypatch.delenv("RESQUE_PROCLINE_PREFIX")
        Procline()("Starting")
        assert setproctitle.getproctitle() == f"resque-{__version__}: Starting"
    finally:
        setproctitle.setproctitle(before)
