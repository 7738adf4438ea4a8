"""The ``pyresque`` command line: the command group, its errors and version, and the
environment it reads; each group of commands is a module of ``pyresque.cli``
(``worker``, ``queues``, ``workers``, ``status``, ``failed``, ``schedule``, ``web``,
``dev``, ``cluster_copy``), each calling the admin layer (``client.admin``) or the worker side.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click
import redis

from pyresque.cli.cluster_copy import cluster_copy_command
from pyresque.cli.dev import demo_command, server_command
from pyresque.cli.failed import failed_group
from pyresque.cli.queues import enqueue_command, forget_idle_queues_command
from pyresque.cli.schedule import cron_group, delayed_group
from pyresque.cli.status import batch_command, cancel_command, status_command
from pyresque.cli.support import fail, printable
from pyresque.cli.web import web_command
from pyresque.cli.worker import scheduler_command, worker_command
from pyresque.cli.workers import ctl_command, info_command, workers_command
from pyresque.exceptions import BadRedisURL, NotReplicated
from pyresque.protocol.connection import REDIS_DOWN
from pyresque.version import __version__

#: Redis down, or a write the replicas did not confirm: one line, exit 1.
UNREACHABLE: tuple[type[BaseException], ...] = (*REDIS_DOWN, NotReplicated)


class _CLI(click.Group):
    """A group whose errors are one line: ``pyresque: error: <what to fix>``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(super().main, args, prog_name, complete_var, False, **extra)
        if not standalone_mode:
            return run()
        try:
            code: Any = run()
        except click.UsageError as exc:
            fail(exc.format_message(), 2)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted", 1)
        except UNREACHABLE as exc:
            fail(str(exc), 1)
        except BadRedisURL as exc:
            fail(str(exc), 2)
        except redis.exceptions.ResponseError as exc:  # WRONGTYPE and kin: foreign data
            fail(
                f"Redis refused a command ({printable(str(exc))}): a key of the namespace "
                "holds another type than Resque writes there; inspect it with redis-cli",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_CLI)
@click.version_option(version=__version__, prog_name="pyresque")
def main() -> None:
    """pyresque: Resque-compatible background jobs backed by Redis."""


for _command in (
    worker_command,
    scheduler_command,
    enqueue_command,
    forget_idle_queues_command,
    info_command,
    workers_command,
    ctl_command,
    status_command,
    cancel_command,
    batch_command,
    failed_group,
    cron_group,
    delayed_group,
    web_command,
    demo_command,
    server_command,
    cluster_copy_command,
):
    main.add_command(_command)


#: The environment variables the commands read under Resque's names; all the others
#: start with PYRESQUE_ or RESQUE_.
ENV_VARS = (
    "QUEUE", "QUEUES", "INTERVAL", "BLOCKING", "COUNT", "CONCURRENCY", "PIDFILE",
    "FORK_PER_JOB", "PREFIX", "REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB",
    "APP_INCLUDE", "VERBOSE", "LOGGING", "VVERBOSE",
)  # fmt: skip


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any variable the commands read: for starting workers that
    take every setting from their arguments (tests, benchmarks), whatever the shell set."""
    return {
        k: v
        for k, v in environ.items()
        if k not in ENV_VARS and not k.startswith(("PYRESQUE_", "RESQUE_"))
    }
