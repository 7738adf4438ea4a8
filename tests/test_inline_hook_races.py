"""Inline mode: a failed job's ``on_failure`` hooks take SIGALRM's ``Interrupted`` past
their bound (executors/interrupts.py), and the job's timeout may land just before,
during or after ``ended`` (as it returned, or as it failed). Whatever the
interleaving the job ends once, its hooks run at most once, and nothing escapes into
the processor's own code. The alarms come at every line of the executor,
Performer and ``fail`` (a signal's handler runs between any two bytecodes), from a tracer in
a subprocess, in place of the timer, whose own firing would make the runs differ."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import signal, sys
from pyresque import Events, Job, Payload
from pyresque.executors import interrupts
from pyresque.executors.base import Stop
from pyresque.executors.inprocess import InlineExecutor

signal.setitimer = lambda *args: (0.0, 0.0)  # the alarms come from the tracer
interrupts.HOOKS_FLOOR = 0.0  # the hooks are due as they begin (their bound: ~0 s)
executor = InlineExecutor(Events())
payload = Payload.decode(b'{"class":"J","args":[]}')
FILES = ("executors/inprocess.py", "executors/interrupts.py", "jobs/perform.py",
         "middleware/hooks.py")
hooks, plan, count, bound = [], set(), [0], []


def tracer(frame, event, arg):
    if not frame.f_code.co_filename.endswith(FILES):
        return None
    if event == "call":
        return tracer  # and each of its lines
    if event != "line":
        return tracer
    n = count[0]
    count[0] += 1
    if n in plan:
        plan.discard(n)
        bound.append(executor._hooks is not None)  # the hooks' bound, not the job's timeout
        executor._on_alarm(signal.SIGALRM, frame)  # SIGALRM's handler, run here
    return tracer


def traced():
    sys.settrace(tracer)  # again from here: an exception the tracer raised turned it off
    frame = sys._getframe(1)
    while frame is not None:
        frame.f_trace = tracer
        frame = frame.f_back


class Fails(Job, register=False):
    def perform(self):
        traced()
        raise ValueError("its own")

    def on_failure(self, exception):
        hooks.append(type(exception).__name__)
        traced()


class Succeeds(Fails, register=False):
    def perform(self):
        traced()


def once(job_cls, ticks):
    hooks.clear()
    bound.clear()
    plan.clear()
    plan.update(ticks)
    count[0] = 0
    stop = Stop()
    stop.grace = 0.0
    result = {}
    try:
        result["outcome"] = executor.execute(job_cls(payload, "q"), 1e-9, stop)
    except BaseException as exc:  # escaped into the processor's own code
        result["escaped"] = exc
    finally:
        sys.settrace(None)
    return result, list(hooks), count[0]


found = []
for job_cls in (Fails, Succeeds):
    total = once(job_cls, set())[2]
    for first in range(total + 2):
        for second in range(first + 1, total + 3):
            result, ran, _ = once(job_cls, {first, second})
            bad = None
            if "escaped" in result:
                bad = f"escaped {result['escaped']!r}"
            elif executor._running is not None or executor._hooks is not None:
                bad = "the executor still holds the job"
            elif len(ran) > 1:
                bad = f"hooks ran {ran}"
            elif result["outcome"].kind == "failed" and not ran and not any(bound):
                bad = "failed without its hooks, which no alarm cut"
            if bad:
                found.append((job_cls.__name__, first, second, bad))
for line in found[:10]:
    print(line)
print("problems", len(found))
"""


def test_every_interleaving_of_two_alarms_ends_the_job_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "problems 0", "\n".join(lines)
