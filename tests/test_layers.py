"""The package's design, kept by a test: layers import only downward, modules import
each other without cycles (imports made only for type checking count too), no module
grows past about 400 lines, and the producer and the dashboard load no worker code.

The layer order lives here, in ``LAYERS``; each subpackage's ``__init__`` docstring
says the same in words.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyresque

SRC = Path(pyresque.__file__).resolve().parent

#: Bottom to top: a module may import from its own layer or a lower one. A name is
#: the part after ``pyresque.``: a subpackage, or a top-level module.
LAYERS: list[set[str]] = [
    {"exceptions", "version"},  # leaves: import nothing of pyresque
    {"protocol"},  # what Resque keeps in Redis, and the scripts that change it
    {"jobs"},  # the job model, hooks, and running one job
    {"middleware"},  # what wraps a job: retries, timeouts, locks, limits, history
    {"client"},  # the producer and the admin API
    {"scheduling"},  # delayed jobs and cron
    {"executors"},  # where a job runs: inline, threads, asyncio, fork, prefork
    {"worker"},  # the worker's life: fetch, process, heartbeat, recovery
    {"web"},  # the dashboard, its JSON API and /metrics
    {"dev"},  # the Redis launcher, the demo, the pytest plugin
    {"cli"},  # the ``pyresque`` command
    {"contrib"},  # Django, Flask, FastAPI/Starlette integrations (optional extras)
    {"", "moved"},  # the package root (public API) and the old module paths
]

MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of a ``pyresque`` module (the root package is the top one)."""
    top = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer: add pyresque.{top} to LAYERS")


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every pyresque module *module* imports, anywhere in it: at the top, inside
    functions and under ``if TYPE_CHECKING:``. ``from package import name`` counts as
    importing the submodule when *name* is one, else the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        yield from (target for target in targets if target.split(".")[0] == "pyresque")


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set(imports(module, path, known)) - {module}
        unknown = targets - set(known)
        assert not unknown, f"{module} imports modules that do not exist: {sorted(unknown)}"
        edges[module] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_layers_import_only_downward() -> None:
    upward = {
        (module, target)
        for module, targets in graph().items()
        for target in targets
        if layer(target) > layer(module)
    }
    assert not upward, f"imports from a higher layer: {sorted(upward)}"


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, f"modules that import each other: {found}"


def test_imports_count_type_checking_function_and_relative_ones(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import keys\n"
        "if TYPE_CHECKING:\n"
        "    from pyresque.worker.worker import Worker\n"
        "def late() -> None:\n"
        "    import pyresque.cli.main\n"
    )
    known = modules()
    found = set(imports("pyresque.protocol.probe", module, known))
    assert found == {"pyresque.protocol.keys", "pyresque.worker.worker", "pyresque.cli.main"}


def test_cycle_finder_sees_a_cycle_through_three_modules() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [("a", "b", "c")]


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        layer(module)


def test_no_module_is_over_400_lines() -> None:
    long = sorted(
        module
        for module, path in modules().items()
        if len(path.read_text().splitlines()) > MAX_LINES
    )
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running *statement*."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


#: What the producer, the admin layer and the dashboard must not load: the worker side
#: and croniter.
WORKER_SIDE = ("pyresque.worker", "pyresque.executors", "croniter")


@pytest.mark.parametrize(
    "statement",
    [
        "from pyresque import Resque",
        "import pyresque.client.resque",
        "from pyresque.web import create_app; create_app",
        "import pyresque.web.app",
        "import pyresque.web.metrics",
        # the admin layer, each module on its own
        "import pyresque.client.admin.queues",
        "import pyresque.client.admin.failures",
        "import pyresque.client.admin.workers",
        "import pyresque.client.admin.delayed",
        "import pyresque.client.admin.cron",
        "import pyresque.client.admin.stats",
        "import pyresque.client.admin.methods",
    ],
)
def test_the_producer_and_the_dashboard_load_no_worker_code(statement: str) -> None:
    loaded = loaded_after(statement)
    leaked = sorted(
        name
        for name in loaded
        if any(name == part or name.startswith(part + ".") for part in WORKER_SIDE)
    )
    assert not leaked, f"{statement!r} loads {leaked}"
