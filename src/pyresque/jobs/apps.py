"""Loading the application: the modules (``--app`` / APP_INCLUDE) whose import
registers its jobs, events and schedules. The worker imports them, and so does
fork mode's zygote (zygote.py), so job children see the same application.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

from pyresque.jobs import logs
from pyresque.protocol.escapes import EscapingFormatter

#: How the command line configures logging; the zygote logs the same way.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

#: The format ``configure_logging`` set last (fork mode's zygote is told it).
configured_format = "text"


def configure_logging(level: int, log_format: str = "text") -> None:
    """Log to stderr, as text in ``LOG_FORMAT`` (names and messages from Redis escaped:
    escapes.py) or as JSON lines (logs.py); records made while a job runs carry its
    fields. Raises ``logs.LogFormatError`` for a format it cannot use."""
    global configured_format
    handler = logging.StreamHandler()
    handler.setFormatter(logs.formatter(log_format, lambda: EscapingFormatter(LOG_FORMAT)))
    logs.install()
    logging.basicConfig(level=level, handlers=[handler])
    configured_format = log_format


def app_specs(apps: tuple[str, ...] | list[str]) -> list[str]:
    """Each module name or file path, from values that may hold several (comma or space)."""
    return [name for app in apps for name in app.replace(",", " ").split()]


def import_apps(apps: tuple[str, ...] | list[str]) -> None:
    """Import each module name or ``.py`` file; raise ImportError saying which one failed."""
    for spec in app_specs(apps):
        try:
            if spec.endswith(".py") or os.sep in spec:
                module_spec = importlib.util.spec_from_file_location(Path(spec).stem, spec)
                if module_spec is None or module_spec.loader is None:
                    raise ImportError(f"no such file {spec}")
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_spec.name] = module
                module_spec.loader.exec_module(module)
            else:
                if os.getcwd() not in sys.path:
                    sys.path.insert(0, os.getcwd())
                importlib.import_module(spec)
        except Exception as exc:
            raise ImportError(f"cannot import app module {spec!r}: {exc}") from exc
