"""Sentinel failover under load (benchmarks/failover.py --quick): the master is killed
(SIGKILL) while two real workers (fork and threads mode) run jobs and producers
enqueue. Workers follow the new master without a restart and log the move once;
with the durability policy on, no acknowledged job is lost. The numbers (run twice,
recovery times) are printed for the record, not asserted: a loaded machine changes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAILOVER = Path(__file__).resolve().parent.parent / "benchmarks" / "failover.py"


def rows(report: str) -> dict[str, dict[str, str]]:
    """The report's table, by durability policy."""
    lines = [line for line in report.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header, cells, strict=True))
    return table


@pytest.mark.timeout(600)
def test_workers_follow_a_failover_and_the_policy_loses_no_acknowledged_job(
    tmp_path: Path,
) -> None:
    report = tmp_path / "failover.md"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PREFIX")}
    argv = [sys.executable, str(FAILOVER), "--quick", "--output", str(report)]
    done = subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=540,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    print(report.read_text())
    table = rows(report.read_text())
    for policy in ("off", "on"):
        row = table[policy]
        assert int(row["acknowledged"]) > 0, output
        assert row["worker restarts"] == "0", output  # followed the failover, no restart
        assert int(row["moves logged"]) >= 2, output  # a line per worker (and move)
        assert row["recovery: job run"] != "-", output  # jobs enqueued after the kill ran
    assert table["on"]["lost"] == "0", output
