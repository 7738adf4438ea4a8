"""The control commands a pyresque worker takes through Redis (``pyresque ctl``, the
admin layer), and the signal each one stands for; and ``cancel <job id>``
(``Resque.cancel``), which stops one running job instead.

Here, at the bottom, because both ends use the table: the admin layer refuses an
unknown command before queueing it, and the worker delivers each one as its signal.
"""

from __future__ import annotations

import signal

#: command name -> the signal the worker delivers to itself for it
COMMANDS = {
    "quit": signal.SIGQUIT,
    "term": signal.SIGTERM,
    "pause": signal.SIGUSR2,
    "resume": signal.SIGCONT,
    "kill-job": signal.SIGUSR1,
}

#: ``cancel <job id>``: stop that job if this worker runs it (client/admin/cancel.py).
CANCEL = "cancel "


def cancel_command(job_id: str) -> str:
    return CANCEL + job_id


def cancelled_id(command: str) -> str | None:
    """The job id of a ``cancel`` command, else None."""
    return command[len(CANCEL) :] if command.startswith(CANCEL) else None


def pause_all_set(value: bytes | None) -> bool:
    """Whether Ruby's ``pause-all-workers`` key holds ``true`` as Ruby reads it (stripped,
    any case): no worker takes jobs then. Workers read it with each heartbeat."""
    return value is not None and value.strip().lower() == b"true"
