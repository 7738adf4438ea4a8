"""The module paths of pyresque 0.1 that the docs showed, kept working after the move
into subpackages: ``from pyresque.retry import Retry`` still imports, warns once that
the module moved, and gets the very module object of the new path (one class, not a
copy), so ``isinstance`` checks agree. New code imports from ``pyresque`` itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: old module path -> where it lives now
MOVED = {
    "pyresque.cron": "pyresque.scheduling.cron",
    "pyresque.limits": "pyresque.jobs.limits",
    "pyresque.metrics": "pyresque.web.metrics",
    "pyresque.retry": "pyresque.jobs.retry",
    "pyresque.scheduler": "pyresque.scheduling.scheduler",
    "pyresque.server": "pyresque.dev.server",
    "pyresque.testing": "pyresque.dev.testing",
    "pyresque.unique": "pyresque.jobs.unique",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers the old paths with the modules at the new ones."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; import from pyresque or {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """The module at the new path has run already."""


def install() -> None:
    """Add the finder once (``import pyresque`` calls this)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
