"""The ``pyresque`` command run from a framework's command line (``manage.py
pyresque ...``, ``flask pyresque ...``), with the framework's settings: Redis and
the namespace in the environment (so that no password shows in the process list,
and the worker's children see them), and the settings' ``APPS`` as ``--app``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyresque.cli.main import main
from pyresque.contrib.config import Config

#: The commands that import applications (``--app``).
_WITH_APPS = ("worker", "scheduler")


def run(args: Sequence[str], config: Config, apps: Sequence[str] = (), prog: str = "") -> None:
    """Run ``pyresque ARGS``; ``apps`` (a framework's own boot module) go before the
    settings' ``APPS``. Exits as the command does (SystemExit)."""
    if config.redis_url:
        os.environ["REDIS_URL"] = config.redis_url
    os.environ["PREFIX"] = config.namespace
    args = list(args)
    if args and args[0] in _WITH_APPS:
        modules = [*apps, *config.apps]
        args[1:1] = [f"--app={module}" for module in modules]
    main(args, prog_name=prog or "pyresque")
