"""Process supervision (issue 11, section 2): whatever kills or breaks a worker, no job is
stuck, a job that keeps doing it becomes a PoisonJob, the supervisor never hot-loops,
and a worker never exits 0 while it still holds work.

Real ``pyresque worker`` processes on the jobs of tests/crash_jobs.py, which
inject faults into the worker process itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from e2e_support import Proc, Procs, State, pid_alive, wait_for
from pyresque import Events, Job, JobTimeout, Payload, Registry, Resque
from pyresque.executors.base import Stop
from pyresque.executors.inprocess import InlineExecutor, ThreadExecutor
from pyresque.executors.zygote import Zygote, ZygoteError
from pyresque.middleware.hooks import Performer
from pyresque.worker.supervisor import HEALTHY, MAX_BACKOFF, Supervisor

JOBS = Path(__file__).resolve().parent / "crash_jobs.py"
QUEUE = "default"


def start_worker(procs: Procs, redis_url: str, namespace: str, *extra: str) -> Proc:
    args = ["worker", "--app", str(JOBS), "--redis-url", redis_url, "--namespace", namespace]
    return procs.cli([*args, "--queue", QUEUE, "--interval", "1", *extra], namespace)


def runs(state: State, name: str) -> int:
    return state.number(f"sup:runs:{name}")


def children_of(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in found if pid_alive(int(c))]


# --- a job that crashes its worker -------------------------------------------------------


@pytest.mark.parametrize("mode", ["fork", "inline", "threads", "prefork"])
def test_an_exception_in_the_worker_makes_its_job_a_poison_job(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, mode: str
) -> None:
    """The worker raises while recording the job's outcome: the job is given back as a
    crash each time, fails as PoisonJob after --max-crashes, and the worker goes on."""
    job_id = rq.enqueue(QUEUE, "CrashWorker", {"n": 1})
    rq.enqueue(QUEUE, "Succeed", {"n": 2})
    worker = start_worker(
        procs, redis_url, namespace, "--mode", mode, "--concurrency", "1", "--max-crashes", "2"
    )

    (record,) = state.wait_failed(1, timeout=30)
    assert record["exception"] == "pyresque.PoisonJob", record
    assert record["payload"]["id"] == job_id
    assert record["payload"]["crashes"] == 2
    wait_for(lambda: runs(state, "Succeed") == 1, 30, "the job behind it to run")
    assert runs(state, "CrashWorker") == 2  # never a third time
    assert state.qlen(QUEUE) == 0
    assert worker.running()
    log = worker.log()
    assert log.count("processor crashed") == 2, log
    assert "RuntimeError: simulated bug in the worker" in log  # the traceback is logged


def test_a_processor_thread_that_dies_makes_the_worker_exit_non_zero(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    """An exception no processor contains ends its thread: the worker stops, gives the
    job back as a crash and exits non-zero (restarted), never 0 (read as drained)."""
    job_id = rq.enqueue(QUEUE, "StrayWorker", {"n": 1})
    worker = start_worker(
        procs, redis_url, namespace, "--mode", "prefork", "--concurrency", "2", "--interval", "0"
    )
    procs.expect_failure(worker)

    assert worker.wait_exit(30) == 1, worker.log()
    [item] = state.queue(QUEUE)
    assert item["id"] == job_id
    assert item["crashes"] == 1
    assert "Stray: simulated stray exception in the worker" in worker.log()


def test_a_burst_worker_exits_0_once_drained(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    for n in range(5):
        rq.enqueue(QUEUE, "Succeed", {"n": n})
    worker = start_worker(
        procs, redis_url, namespace, "--mode", "prefork", "--concurrency", "2", "--interval", "0"
    )
    assert worker.wait_exit(30) == 0, worker.log()
    assert runs(state, "Succeed") == 5
    assert state.qlen(QUEUE) == 0


# --- the supervisor -------------------------------------------------------------------------


def test_the_supervisor_backs_off_a_worker_that_keeps_dying(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    """Each worker takes a job that ends its process: restarts come at growing
    intervals, one log line each with the exit status, never a hot loop."""
    for n in range(30):
        rq.enqueue(QUEUE, "ExitWorker", {"n": n})
    supervisor = start_worker(
        procs, redis_url, namespace, "--mode", "inline", "--count", "2", "--max-crashes", "9"
    )
    pattern = re.compile(
        r"(\S+ \S+) ERROR .* worker \d+ exited with code 3 after [\d.]+ s.*; "
        r"restarting it (now|in ([\d.]+) s)"
    )

    def restarts() -> list[re.Match[str]]:
        found = list(pattern.finditer(supervisor.log()))
        return found if len(found) >= 8 else []

    found = wait_for(restarts, 90, "8 restarts")[:8]
    delays = [float(m.group(3) or 0) for m in found]
    assert delays.count(0.0) == 2, delays  # at once only the first time, for each slot
    assert max(delays) >= 1.5, delays  # it grew: one slot had 4 deaths, 0 - 0.5 - 1 - 2 s
    # Never a hot loop: 8 restarts of 2 slots took at least 0.5 + 1 s (jittered) in one.
    first, last = (
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in (found[0], found[-1])
    )
    assert (last - first).total_seconds() >= 1.2, delays
    assert supervisor.running()


def _policy(events: list[tuple[int, bool, float]]) -> list[float]:
    """Feed the supervisor deaths of slot 0 (wait status, was ready, uptime); the
    delays it chose."""
    supervisor = Supervisor(1, lambda ready: None)
    delays = []
    for status, ready, uptime in events:
        before = time.monotonic()
        supervisor._restart(0, 1, status, ready, uptime)
        delays.append(round(supervisor._restart_at.pop(0) - before, 1))
    return delays


KILLED = int(signal.SIGKILL)  # a wait status: killed by SIGKILL
EXIT_1 = 1 << 8  # a wait status: exit code 1
SEGV = int(signal.SIGSEGV)


def test_the_restart_policy() -> None:
    # A crash loop: at once, then 0.5, 1, 2, 4... (jitter 20%), capped.
    delays = _policy([(EXIT_1, True, 0.2)] * 10)
    assert delays[0] == 0.0
    for earlier, later in itertools.pairwise(delays[1:]):
        assert later >= earlier * 1.3 or later >= MAX_BACKOFF * 0.8
    assert 0.4 <= delays[1] <= 0.6
    assert max(delays) <= MAX_BACKOFF * 1.2
    # A crash signal is a crash too.
    assert _policy([(SEGV, True, 5.0)] * 3)[2] > 0.0
    # Killed from outside: at once, however young and often (an operator, chaos, OOM).
    assert _policy([(KILLED, True, 1.5)] * 3 + [(KILLED, False, 0.1)] * 3) == [0.0] * 6
    # ... which also shows the slot was healthy: the crash count starts again.
    assert (
        _policy([(EXIT_1, True, 0.2)] * 3 + [(KILLED, True, 2.0), (EXIT_1, True, 0.2)])[-1] == 0.0
    )
    # So does a long life.
    assert _policy([(EXIT_1, True, 0.2)] * 3 + [(EXIT_1, True, HEALTHY)])[-1] == 0.0


# --- prefork children -------------------------------------------------------------------


def test_a_prefork_child_killed_while_idle_is_replaced(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    worker = start_worker(procs, redis_url, namespace, "--mode", "prefork", "--concurrency", "1")
    worker.wait_log("started (prefork mode", timeout=30)
    [child] = wait_for(lambda: children_of(worker.pid), 30, "the prefork child")
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: not pid_alive(child), 10, "the child to die")

    rq.enqueue(QUEUE, "Succeed", {"n": 1})
    wait_for(lambda: runs(state, "Succeed") == 1, 30, "the job to run in a new child")
    rq.enqueue(QUEUE, "Succeed", {"n": 2})
    wait_for(lambda: runs(state, "Succeed") == 2, 30, "the next job")
    assert worker.running()
    assert state.failed() == []
    assert child not in children_of(worker.pid)


def test_a_prefork_child_that_dies_in_a_job_fails_it_and_is_replaced(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    rq.enqueue(QUEUE, "ExitWorker", {"n": 1})  # in prefork mode it ends the child
    rq.enqueue(QUEUE, "Succeed", {"n": 2})
    worker = start_worker(procs, redis_url, namespace, "--mode", "prefork", "--concurrency", "1")
    (record,) = state.wait_failed(1, timeout=30)
    assert record["exception"] == "pyresque.DirtyExit", record
    assert "exit code 3" in record["error"]
    wait_for(lambda: runs(state, "Succeed") == 1, 30, "the next job, in a new child")
    assert runs(state, "ExitWorker") == 1
    assert worker.running()


# --- a timeout that fires as the job returns ----------------------------------------------


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_timeout_firing_as_the_job_returns_never_kills_the_processor(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, mode: str
) -> None:
    """Jobs that sleep exactly their timeout: each ends either way (ok, or JobTimeout),
    but the processor never sees the timeout land in its own code."""
    jobs = 60
    for n in range(jobs):
        seconds = 0.02 + (n % 5) * 0.001
        rq.enqueue(QUEUE, "Sleep", {"seconds": seconds}, timeout=seconds)
    worker = start_worker(procs, redis_url, namespace, "--mode", mode, "--concurrency", "2")
    state.wait_number("stat:processed", jobs, timeout=60)
    failures = state.failed()
    assert {f["exception"] for f in failures} <= {"pyresque.JobTimeout"}, failures
    assert runs(state, "Sleep") + len(failures) >= jobs
    assert "processor crashed" not in worker.log()
    assert worker.running()


# --- the zygote -----------------------------------------------------------------------------


def test_a_zygote_that_never_gets_ready_is_killed_with_a_clear_error(tmp_path: Path) -> None:
    app = tmp_path / "hanging_app.py"
    app.write_text("import time\ntime.sleep(600)\n")
    zygote = Zygote((str(app),), Performer(Events()), Registry(), start_timeout=2)
    began = time.monotonic()
    with pytest.raises(ZygoteError, match="no child ready within 2 s"):
        zygote.start()
    assert time.monotonic() - began < 15
    assert zygote.process is None  # killed and reaped


def test_a_zygote_killed_while_starting_is_replaced(tmp_path: Path) -> None:
    """Killed from outside while starting (chaos, the OOM killer) is not the application's
    fault: the worker starts another zygote instead of giving up after two."""
    app = tmp_path / "killed_app.py"
    starts = tmp_path / "starts"
    app.write_text(
        "import os, pathlib, signal\n"
        f"starts = pathlib.Path({str(starts)!r})\n"
        "with starts.open('a') as f:\n"
        "    f.write('x')\n"
        "if len(starts.read_text()) <= 3:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    zygote = Zygote((str(app),), Performer(Events()), Registry(), start_timeout=30)
    try:
        zygote.start()
        assert zygote.ready
        assert starts.read_text() == "xxxx"
    finally:
        zygote.close()


def test_a_zygote_that_exits_on_its_own_twice_is_an_error(tmp_path: Path) -> None:
    app = tmp_path / "broken_app.py"
    app.write_text("raise SystemExit(3)\n")
    zygote = Zygote((str(app),), Performer(Events()), Registry(), start_timeout=30)
    with pytest.raises(ZygoteError, match="exited before forking a child"):
        zygote.start()


class _Brief(Job, register=False):
    """Busy for about ``seconds``: ends around the moment its timeout fires."""

    seconds = 0.0005
    ended = 0  # jobs ended so far (the threaded test's watchdog)

    def perform(self) -> None:
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass


def _brief_job() -> _Brief:
    return _Brief(Payload.decode(b'{"class":"Brief","args":[]}'), "q")


@contextlib.contextmanager
def _swallowed() -> Iterator[list[BaseException | None]]:
    """The exceptions raised meanwhile where the interpreter could not pass them on: an
    interrupt that lands in a finalizer or a gc callback it runs then (a redis pool an
    earlier test left to the gc, Hypothesis's gc callback) is swallowed there, nowhere
    in the processor's code (a real worker sends it again while the job runs on).
    Collected here: pytest would warn of each."""
    seen: list[BaseException | None] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_value)
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def test_an_alarm_as_an_inline_job_returns_is_the_jobs_outcome() -> None:
    """SIGALRM fires around the job's return, thousands of times: whatever the moment,
    execute() returns an outcome (ok or JobTimeout) and never raises."""
    executor = InlineExecutor(Events())
    kinds: Counter[str] = Counter()
    try:
        with _swallowed() as swallowed:
            for _ in range(1500):
                outcome = executor.execute(_brief_job(), _Brief.seconds, Stop())
                kinds[outcome.exception or outcome.kind] += 1
    finally:
        executor.close()
    assert set(kinds) <= {"ok", "pyresque.JobTimeout"}, kinds
    assert all(isinstance(exc, JobTimeout) for exc in swallowed), swallowed


class _TakesTheAlarm(Job, register=False):
    """Replaces the worker's SIGALRM handler with its own, as a job may."""

    def perform(self) -> None:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)


class _Sleeps(Job, register=False):
    def perform(self) -> None:
        time.sleep(10)


def test_an_inline_job_that_replaces_the_alarm_handler_does_not_disarm_the_next_timeout() -> None:
    """The executor installs its SIGALRM handler once, not per job: after a job that
    replaced it, the next job's timeout still stops that job."""
    executor = InlineExecutor(Events())
    try:
        executor.execute(
            _TakesTheAlarm(Payload.decode(b'{"class":"A","args":[]}'), "q"), None, Stop()
        )
        started = time.monotonic()
        outcome = executor.execute(
            _Sleeps(Payload.decode(b'{"class":"S","args":[]}'), "q"), 0.2, Stop()
        )
        assert outcome.exception == "pyresque.JobTimeout"
        assert time.monotonic() - started < 9
    finally:
        executor.close()
    assert signal.getsignal(signal.SIGALRM) is not signal.SIG_IGN


def test_a_watchdog_interrupt_as_a_threaded_job_returns_is_the_jobs_outcome() -> None:
    """As the worker's watchdog does, one JobTimeout per job, raised in the job's thread
    at a random moment, often as the job ends: it lands in the job or nowhere, never in
    the processor's own code."""
    executor = ThreadExecutor(Events())
    kinds: Counter[str] = Counter()
    escaped: list[BaseException] = []
    done = threading.Event()
    jobs = 1500

    def processor() -> None:
        try:
            for _ in range(jobs):
                kinds[executor.execute(_brief_job(), None, Stop()).kind] += 1
                _Brief.ended += 1
        except BaseException as exc:
            escaped.append(exc)
        finally:
            done.set()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns every few bytecodes
    try:
        with _swallowed() as swallowed:
            thread = threading.Thread(target=processor)
            thread.start()
            interrupted = -1
            while not done.is_set():
                if _Brief.ended != interrupted:  # once per job, as the watchdog's first
                    interrupted = _Brief.ended
                    time.sleep(random.uniform(0, _Brief.seconds * 1.2))
                    executor.interrupt(JobTimeout)
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert escaped == [], "".join(traceback.format_exception(escaped[0]))
    assert all(isinstance(exc, JobTimeout) for exc in swallowed), swallowed
    assert kinds["failed"] > 0  # the interrupts did land, in jobs
    assert sum(kinds.values()) == jobs
