"""The installed version, in a module of its own so the worker's process title and
the dashboard can show it without importing the package root (which names them)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed() -> str:
    try:
        return version("pyresque")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


__version__ = _installed()
