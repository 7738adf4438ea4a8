"""The dashboard, the producer and the admin layer load without the worker side.

Issue 12: importing them must not import the worker, the executors (fork, zygote)
or croniter, so a web process or a producer stays small and a change to the worker
cannot break them at import. Each import runs in a fresh interpreter, where
``sys.modules`` shows exactly what it pulled in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("pyresque.worker", "pyresque.executors", "croniter")

MODULES = [
    "pyresque.web.app",
    "pyresque.web.metrics",
    "pyresque.client.resque",
    "pyresque.client.admin",
    "pyresque.client.admin.queues",
    "pyresque.client.admin.failures",
    "pyresque.client.admin.workers",
    "pyresque.client.admin.delayed",
    "pyresque.client.admin.cron",
    "pyresque.client.admin.stats",
    "pyresque.client.admin.methods",
]


def loaded_after(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    names: list[str] = json.loads(out.stdout)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_importing_does_not_load_the_worker_side(module: str) -> None:
    names = loaded_after(module)
    assert module in names
    pulled = [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert pulled == []


def test_the_check_sees_the_worker_side_when_it_is_imported() -> None:
    """The check is not vacuous: the worker does pull in the executors and croniter."""
    names = loaded_after("pyresque.worker.worker")
    assert "pyresque.executors.forking" in names
    assert "croniter" in names
