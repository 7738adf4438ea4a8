"""Threads mode: a failed job's ``on_failure`` hooks take the watchdog's interrupt past
their bound (executors/interrupts.py), and a job's stop (a timeout, a TERM's grace, a
cancel) may land just before, during or after ``ended``. Whatever the interleaving the
job ends once, as it failed or as it was stopped, its hooks run at most once (and once
if it failed with no interrupt into them), and nothing escapes into the processor's own
code. The executor and its job run in a subprocess (an interrupt that escaped would hit
the test process), the watchdog's ticks in threads of their own, as the worker's."""

from __future__ import annotations

import subprocess
import sys

PRELUDE = """
import _thread, sys, threading, time
from pyresque import Events, Job, JobTimeout, Payload
from pyresque.exceptions import Cancelled, Interrupted
from pyresque.executors.base import Stop
from pyresque.executors.inprocess import ThreadExecutor
from pyresque.executors.interrupts import interrupt_thread

executor = ThreadExecutor(Events())
payload = Payload.decode(b'{"class":"J","args":[]}')
hooks = []


def executed(job_cls, stop):
    result = {}
    def run():
        try:
            result["outcome"] = executor.execute(job_cls(payload, "q"), None, stop)
        except BaseException as exc:  # escaped into the processor's own code
            result["escaped"] = exc
        finally:
            sys.settrace(None)
        try:
            for _ in range(3):
                (lambda: None)()
        except BaseException as exc:  # left pending: it lands in the processor's code
            result["pending"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result
"""

# The watchdog takes the guard to send the job's timeout just as the job fails: the job's
# thread waits for the guard in ``ended``, and the timeout lands once it has it.
GUARD = """
class Fails(Job, register=False):
    def perform(self):
        executor._guard.acquire()  # the watchdog's tick, in interrupt(): it holds the guard
        me = threading.get_ident()
        def tick():
            while sys._current_frames()[me].f_code.co_name != "_ended":
                time.sleep(0.001)
            interrupt_thread(me, JobTimeout)  # interrupt()'s send, under the guard
            executor._sent = True
            executor._guard.release()
        threading.Thread(target=tick).start()
        raise ValueError("its own")

    def on_failure(self, exception):
        hooks.append(type(exception).__name__)


result = executed(Fails, Stop())
print(result.get("outcome") and result["outcome"].kind, hooks, sorted(set(result) - {"outcome"}))
"""

# Up to two watchdog ticks, each at any function start of the executor, Performer and
# ``fail`` (where CPython looks for a pending asynchronous exception), the second one
# past the hooks' bound (the lease was lost: they are due at once).
EVERY = """
FILES = ("executors/inprocess.py", "executors/interrupts.py", "jobs/perform.py",
         "middleware/hooks.py")
plan = {}
count = [0]
sent = []


def tick(kind):
    done = _thread.allocate_lock()
    done.acquire()
    def run():
        try:
            if executor.interrupt(kind):
                sent.append(kind.__name__)
            else:
                executor.watch(time.monotonic())  # the hooks' bound
                sent.append("watch")
        finally:
            done.release()
    _thread.start_new_thread(run, ())
    done.acquire()  # what it sent lands here, at this function's start


def tracer(frame, event, arg):
    if event != "call" or not frame.f_code.co_filename.endswith(FILES):
        return None
    n = count[0]
    count[0] += 1
    kind = plan.get(n)
    if kind is not None:
        if executor._guard.locked():  # the watchdog waits for it: a later start
            plan[n + 1] = plan.pop(n)
        else:
            del plan[n]
            tick(kind)
    return None


def traced():
    # Again from here: an exception raised by the tracer turned it off.
    sys.settrace(tracer)
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
    sent.clear()
    plan.clear()
    plan.update(ticks)
    count[0] = 0
    stop = Stop()
    stop.lease_deadline = 0.0  # the hooks are past their bound as they begin
    return executed(job_cls, stop), list(hooks), list(sent), count[0]


def problem(job_cls, ticks):
    result, ran, sent, n = once(job_cls, ticks)
    if set(result) != {"outcome"}:
        return n, f"{sorted(set(result) - {'outcome'})}: {result}"
    if executor._job_thread is not None or executor._hooks is not None:
        return n, "the executor still holds the job"
    kind = result["outcome"].kind
    stopped = [s for s in sent if s != "watch"]
    if len(ran) > 1 or (kind == "failed" and not ran and "watch" not in sent):
        return n, f"{kind}, hooks ran {ran}"
    if kind == "failed" and ran and stopped and stopped[0] in ("Interrupted", "Cancelled"):
        if ran != ["ValueError"]:
            return n, f"stopped but failed with hooks {ran}"
    if job_cls is Fails and kind != "failed" and not stopped:
        return n, f"the hooks' bound made it {kind}"
    return n, None


found = []
for job_cls in (Fails, Succeeds):
    for kind in (JobTimeout, Interrupted, Cancelled):
        total = once(job_cls, {10**9: kind})[3]
        for first in range(total + 2):
            n, bad = problem(job_cls, {first: kind})
            if bad:
                found.append((job_cls.__name__, kind.__name__, first, None, bad))
            for second in range(first + 1, n + 2):
                _, bad = problem(job_cls, {first: kind, second: Interrupted})
                if bad:
                    found.append((job_cls.__name__, kind.__name__, first, second, bad))
for line in found[:10]:
    print(line)
print("problems", len(found))
"""


def _run(script: str) -> list[str]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", PRELUDE + script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the script never ended: {exc.stdout!r}") from None
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_timeout_sent_as_the_job_fails_lands_in_ended_and_the_hooks_still_run() -> None:
    assert _run(GUARD) == ["failed ['JobTimeout'] []"]


def test_every_interleaving_of_two_ticks_ends_the_job_once() -> None:
    lines = _run(EVERY)
    assert lines[-1] == "problems 0", "\n".join(lines)
