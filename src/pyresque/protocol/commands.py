"""The control commands a pyresque worker takes through Redis (``pyresque ctl``, the
admin layer), and the signal each one stands for.

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
