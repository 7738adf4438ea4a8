"""The core loads none of the optional extras (issue 17: the integrations may not add
dependencies to the core). Each extra's packages are replaced by a stub on PYTHONPATH
that records who imported it and raises ImportError, as if it were not installed:
every core module imports, and a real worker (its zygote and job children included)
runs a job in every execution mode and a scheduler starts, with no import of an extra
coming from pyresque's own code. redis-py 8 itself tries OpenTelemetry when it is
installed (redis/observability): imports from outside pyresque are left out."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyresque
from e2e_support import Procs, State, wait_for
from pyresque import Resque

# What the extras bring (pyproject: web, otel, json-logs, django, flask, fastapi).
EXTRAS = (
    "django", "flask", "fastapi", "starlette", "a2wsgi", "uvicorn", "jinja2", "multipart",
    "python_multipart", "prometheus_client", "opentelemetry", "pythonjsonlogger",
)  # fmt: skip

#: What is not the core: the integrations, the dashboard, the pytest plugin, and the
#: modules of the otel extra, loaded only by an application that adds them.
NOT_CORE = (
    "pyresque.contrib", "pyresque.web", "pyresque.dev.testing",
    "pyresque.middleware.tracing", "pyresque.middleware.otel_metrics",
)  # fmt: skip

PACKAGE = str(Path(pyresque.__file__).parent) + "/"

STUB = """\
import json, os, traceback
# The first frame outside importlib is the module that asked for this package.
frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
with open(os.environ["EXTRAS_LOG"], "a") as log:
    log.write(json.dumps([__name__, frames[-1].filename if frames else "?"]) + "\\n")
raise ImportError(__name__ + " is not installed (tests/test_core_without_extras.py)")
"""


def core_modules() -> list[str]:
    found = pkgutil.walk_packages(pyresque.__path__, "pyresque.")
    return [
        m.name for m in found if not m.name.startswith(NOT_CORE) and not m.name.endswith("__main__")
    ]


@pytest.fixture
def blocked(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which no extra can be imported."""
    stubs = tmp_path / "stubs"
    for name in EXTRAS:
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(STUB)
    return {"PYTHONPATH": str(stubs), "EXTRAS_LOG": str(tmp_path / "extras.log")}


def imports_by_pyresque(env: dict[str, str]) -> list[list[str]]:
    """The extras that pyresque's own modules tried to import, with the importer."""
    log = Path(env["EXTRAS_LOG"])
    tried = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [entry for entry in tried if entry[1].startswith(PACKAGE)]


def test_the_stub_records_an_import_by_pyresque(blocked: dict[str, str]) -> None:
    """The check itself can fail: an extra imported by a pyresque module is seen."""
    code = "import pyresque.middleware.tracing"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**blocked}, capture_output=True, text=True, check=False
    )
    assert "install the otel extra" in done.stderr
    assert [name for name, _ in imports_by_pyresque(blocked)] == ["opentelemetry"]


def test_every_core_module_imports_without_the_extras(blocked: dict[str, str]) -> None:
    modules = core_modules()
    assert "pyresque.worker.worker" in modules
    assert "pyresque.client.async_resque" in modules
    code = "import importlib, sys, warnings\nwarnings.simplefilter('ignore')\n"
    code += f"for name in {modules!r}:\n    importlib.import_module(name)\n"
    code += f"print(sorted(m for m in sys.modules if m.split('.')[0] in {EXTRAS!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=blocked, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert imports_by_pyresque(blocked) == []


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline", "threads", "asyncio"])
def test_a_worker_runs_a_job_in_each_mode_without_the_extras(
    procs: Procs, rq: Resque, state: State, blocked: dict[str, str], mode: str
) -> None:
    rq.enqueue("default", "Succeed", {"mode": mode})
    worker = procs.worker(rq.namespace, "default", "--mode", mode, "--interval", "0", env=blocked)
    assert worker.wait_exit(60) == 0, worker.log()
    assert state.number("stat:processed") == 1, worker.log()
    assert imports_by_pyresque(blocked) == []


def test_the_scheduler_starts_without_the_extras(
    procs: Procs, rq: Resque, blocked: dict[str, str]
) -> None:
    rq.enqueue_in(0.5, "default", "Succeed", {})
    argv = ["scheduler", "--redis-url", procs.redis_url, "--namespace", rq.namespace]
    scheduler = procs.cli([*argv, "--interval", "0.1"], rq.namespace, blocked)
    wait_for(lambda: rq.size("default") == 1 or not scheduler.running(), 60, "the job moved")
    assert scheduler.running(), scheduler.log()
    assert imports_by_pyresque(blocked) == []
