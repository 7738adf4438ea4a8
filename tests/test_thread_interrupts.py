"""Threads-mode jobs leave the interpreter as they found it (executors/inprocess.py). The
watchdog's interrupts are asynchronous exceptions; one that has not landed when its job
ends is dropped by another that lands at once, never by setting none, which on CPython
3.11 leaves the interpreter's pending flag set for good: a traced call (coverage, a
debugger, Hypothesis tracing a failing test) then spun forever, as two of the suite's
Hypothesis tests did in processes that had run such jobs."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading, time
from pyresque import Events, Job, JobTimeout, Payload
from pyresque.executors.base import Stop
from pyresque.executors.inprocess import ThreadExecutor

executor = ThreadExecutor(Events())

class Quick(Job, register=False):
    def perform(self):
        return None

class Interrupted(Job, register=False):
    def perform(self):  # the watchdog fires while it runs: it lands in the job
        threading.Thread(target=executor.interrupt, args=(JobTimeout,)).start()
        for _ in range(3000):
            time.sleep(0.01)

kinds = []
payload = Payload.decode(b'{"class":"J","args":[]}')
for job in (Quick, Interrupted, Quick):
    run = lambda: kinds.append(executor.execute(job(payload, "q"), None, Stop()).kind)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
print(kinds, flush=True)

def tracer(frame, event, arg):
    return tracer

sys.settrace(tracer)
(lambda: None)()
sys.settrace(None)
print("traced", flush=True)
"""


def test_a_traced_call_after_threaded_jobs_returns() -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the traced call never returned: {exc.stdout!r}") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['ok', 'failed', 'ok']", "traced"]
