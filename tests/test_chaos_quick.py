"""The chaos run's CI version (benchmarks/chaos.py --quick): no job may be lost.

It kills job children, zygotes and workers (a SIGKILL every 400 ms) and restarts Redis
twice while 150 jobs run, then checks every job, and that every kind of kill happened.
See docs/reliability.md, "Chaos run".
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"
#: The run fails when no job has settled for STALL seconds: a machine loaded by other
#: suites is slow, not broken. LIMIT only bounds a run that crawls on and on.
STALL = 30.0
LIMIT = 600.0


@pytest.mark.timeout(LIMIT + 120)
def test_quick_chaos_run_loses_no_job(tmp_path: Path) -> None:
    report = tmp_path / "chaos.md"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PREFIX")}
    argv = [sys.executable, str(CHAOS), "--quick", "--seed", "1", "--output", str(report)]
    argv += ["--max-seconds", str(LIMIT), "--stall-seconds", str(STALL)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=LIMIT + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # chaos.py stops its workers and Redis
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        raise AssertionError(
            f"the quick chaos run took longer than {LIMIT + 60} s:\n"
            f"{output.decode(errors='replace')}"
        ) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "lost: 0" in text, text
    assert "complete: yes" in text, text
    assert "| lost | 0 |" in report.read_text()
    kills = re.search(
        r"kills performed: \d+ \((\d+) workers, (\d+) zygotes, (\d+) job children\)", text
    )
    assert kills, text
    assert all(int(n) >= 1 for n in kills.groups()), kills.group(0)  # each kill point
    assert "Redis restarts: 2 " in text, text
