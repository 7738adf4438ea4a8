"""Fork mode's zygote (zygote.py): job children come from a small process that never
imported the Redis client, each job gets a new one, and a zygote that dies is replaced."""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from e2e_support import Procs, State, parent_of, pid_alive, wait_for
from pyresque import Events, Job, Payload, Registry, Resque, Worker, WorkerOptions
from pyresque.executors.base import Stop
from pyresque.executors.child import job_message, receive, send
from pyresque.executors.event_loop import EventLoopThread
from pyresque.executors.forking import ForkExecutor, PreforkExecutor
from pyresque.executors.inprocess import AsyncioExecutor, InlineExecutor, ThreadExecutor
from pyresque.jobs.perform import Outcome

PROBE_APP = """
import json, os, sys
from pathlib import Path

from pyresque import Job


def _parent_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])


class Probe(Job):
    def perform(self):
        seen = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "grandparent": _parent_of(os.getppid()),
            "modules": sorted(m for m in ("redis", "asyncio", "ssl", "click") if m in sys.modules),
        }
        with open(os.environ["PROBE_OUT"], "a") as out:
            out.write(json.dumps(seen) + "\\n")
"""


def test_each_job_runs_in_a_new_child_of_a_zygote_that_never_imported_redis(
    procs: Procs, rq: Resque, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    app, out = tmp_path / "probe_app.py", tmp_path / "probe.jsonl"
    app.write_text(PROBE_APP)
    for n in range(3):
        rq.enqueue("default", "Probe", {"n": n})
    argv = ["worker", "--app", str(app), "--redis-url", redis_url, "--namespace", namespace]
    argv += ["--queue", "default", "--interval", "0"]
    worker = procs.cli(argv, namespace, env={"PROBE_OUT": str(out)})
    assert worker.wait_exit(15) == 0, worker.log()
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(seen) == 3
    assert len({s["pid"] for s in seen}) == 3  # a new process per job
    [zygote] = {s["ppid"] for s in seen}  # all forked by one zygote...
    assert zygote != worker.pid
    assert {s["grandparent"] for s in seen} == {worker.pid}  # ...a child of the worker
    assert all(s["modules"] == [] for s in seen)  # no Redis client, ssl, asyncio or CLI


def test_a_killed_zygote_fails_its_running_job_and_is_replaced(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = procs.worker(namespace, "default")
    rq.enqueue("default", "Block", {"tag": "zygote"})
    [started] = state.wait_event("Block", "started")
    zygote = started["ppid"]
    assert parent_of(zygote) == worker.pid

    os.kill(zygote, signal.SIGKILL)
    # The job's child dies with its zygote: a dirty exit, and the worker goes on.
    wait_for(lambda: not pid_alive(started["pid"]), 30, "the job child to die with its zygote")
    [record] = state.wait_failed(1)
    assert record["exception"] == "pyresque.DirtyExit"
    assert f"pid {started['pid']}" in record["error"]
    rq.enqueue("default", "Succeed", {"after": "zygote"})
    [ran] = state.wait_event("Succeed", "perform")
    assert ran["ppid"] != zygote  # a new zygote
    assert parent_of(ran["ppid"]) == worker.pid
    assert worker.running()


def children_of(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_job_whose_child_dies_before_taking_it_goes_back_and_runs_once(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """Children wait for their job: one killed before it read its job never ran it, so
    the job is requeued (not failed) and runs in another child."""
    worker = procs.worker(namespace, "default")
    worker_id = state.wait_registered(state.worker_id(worker))
    # The worker registers before its executor starts the zygote: wait for it.
    [zygote] = wait_for(lambda: children_of(worker.pid) or None, 30)
    spares = wait_for(lambda: children_of(zygote) if len(children_of(zygote)) == 2 else None, 30)
    for pid in spares:  # frozen: the worker hands one the job, which it cannot read
        os.kill(pid, signal.SIGSTOP)
    rq.enqueue("default", "Succeed", {"n": "once"})
    # Taken from the queue is not yet handed over: a spare killed before the worker
    # writes the job to it is skipped (BrokenPipe), so wait for the job's running record,
    # which the worker writes only once a child holds the job.
    wait_for(lambda: state.exists(f"worker:{worker_id}"), 30, "the job to be handed to a child")
    for pid in spares:
        os.kill(pid, signal.SIGKILL)

    [ran] = state.wait_event("Succeed", "perform")
    assert ran["pid"] not in spares
    state.wait_number("stat:processed", 1)
    assert state.failed() == []
    assert state.number("stat:failed") == 0
    assert len(state.events("Succeed", "perform")) == 1
    worker.wait_log("back at the head of its queue")


class _Embedded(Job, register=False):
    def perform(self) -> None:
        Path(os.environ["EMBEDDED_OUT"]).write_text(
            json.dumps({"pid": os.getpid(), "redis": "redis" in sys.modules})
        )


def test_a_worker_started_from_code_forks_its_zygote_from_itself(
    redis_url: str, namespace: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """No --app modules to import: children are copies of the worker's own process, so
    they see what the application set up at run time (here, a listener)."""
    out, hooked = tmp_path / "embedded.json", tmp_path / "after_fork"
    monkeypatch.setenv("EMBEDDED_OUT", str(out))
    events, jobs = Events(), Registry()
    jobs.register(_Embedded)
    events.listen("after_fork", lambda job: hooked.write_text(str(os.getpid())))
    resque = Resque(redis_url, namespace=namespace, events=events, registry=jobs)
    try:
        resque.enqueue("q", _Embedded, None)
        worker = Worker(resque, "q", WorkerOptions(interval=0, mode="fork"))
        worker.work()
    finally:
        resque.redis.close()
    assert worker.processed == 1
    assert worker.failed == 0
    ran = json.loads(out.read_text())
    assert ran["pid"] != os.getpid()
    assert ran["redis"]  # a copy of this process, which did import it
    assert hooked.read_text() == str(ran["pid"])  # the run-time listener ran in the child


def _children(pid: int) -> set[int]:
    """The live children of ``pid`` (Linux: every thread's ``children`` file)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def test_the_successor_of_a_jobs_child_is_forked_after_the_job_not_as_it_starts(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    # A fork as a job starts competes with it for the CPU (the idle worker's pickup
    # latency): while a job runs, the zygote holds it and one spare, not two.
    from pyresque.executors.zygote import SPARE

    procs.worker(namespace, "default")
    rq.enqueue("default", "Block", {"tag": "spares"})
    [started] = state.wait_event("Block", "started")
    zygote = started["ppid"]
    spares = _children(zygote) - {started["pid"]}
    deadline = time.monotonic() + 2  # (a fork as it started would show by now)
    while time.monotonic() < deadline:
        assert _children(zygote) - {started["pid"]} == spares, "forked while the job ran"
        time.sleep(0.05)
    assert len(spares) == SPARE - 1, spares
    state.release("spares")
    state.wait_event("Block", "finished")
    # Then its successor: SPARE children ready again, none of them the job's.
    wait_for(
        lambda: len(_children(zygote) - {started["pid"]}) == SPARE,
        30,
        "the zygote to fork the finished job's successor",
    )
    assert spares < _children(zygote)  # the spare waits on, ready for the next job


# --- the way from the worker to a job's first line ------------------------------------


class _Gate(Job, register=False):
    """Says it started, then waits for its gate file."""

    def perform(self, started: str, gate: str) -> None:
        Path(started).write_text(str(os.getpid()))
        deadline = time.monotonic() + 30
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)


def test_a_child_says_nothing_to_the_worker_as_it_takes_its_job(tmp_path: Path) -> None:
    """The worker learns whether a dead child had taken its job from what is left in the
    job's pipe: no message wakes it just as the job starts, competing for a CPU."""
    jobs = Registry()
    jobs.register(_Gate)
    executor = PreforkExecutor(Events(), jobs=jobs)
    started, gate = tmp_path / "started", tmp_path / "gate"
    payload = Payload.build("_Gate", [str(started), str(gate)])
    try:
        executor.start()
        child = executor.child
        assert child is not None
        send(child.writer, job_message("q", payload.encode(), None))
        wait_for(started.exists, 30, "the job to start")
        assert select.select([child.reader], [], [], 0.5)[0] == []  # nothing came
        gate.write_text("open")
        assert select.select([child.reader], [], [], 30)[0]  # its outcome
        assert Outcome.decode(receive(child.reader) or b"").kind == "ok"
    finally:
        executor.close()


class _Quick(Job, register=False):
    def perform(self) -> None:
        pass


def _quick() -> _Quick:
    return _Quick(Payload.build("_Quick", []), "q")


def test_a_successors_ready_message_is_read_after_a_job_not_before_the_next(
    tmp_path: Path,
) -> None:
    """The worker reads the zygote's news after a job ends, so the next job finds a child
    ready without a read on its way to its start."""
    jobs = Registry()
    jobs.register(_Quick)
    executor = ForkExecutor(Events(), jobs=jobs)
    zygote = executor.zygote
    try:
        executor.start()
        spares = {child.pid for child in zygote.ready}
        assert executor.execute(_quick(), None, Stop()).kind == "ok"  # 1st of 2 spares
        # Its successor is forked (the zygote says so just after its fork):
        wait_for(lambda: _children(zygote.pid) - spares, 30, "the successor")
        time.sleep(0.2)
        assert executor.execute(_quick(), None, Stop()).kind == "ok"  # 2nd spare
        assert zygote.ready, "the successor's ready message is still unread"
    finally:
        executor.close()


def test_job_children_find_how_each_job_is_called_worked_out_by_the_zygote(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Each job's signature is read once, in the zygote, not in every child as its job
    starts (a zygote forked from this process, as a worker started from code has)."""
    import inspect

    calls = tmp_path / "signature_calls"
    real = inspect.signature

    def counted(func: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        with open(calls, "a") as out:
            out.write(f"{os.getpid()} {getattr(func, '__qualname__', func)}\n")
        return real(func, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counted)
    jobs = Registry()
    jobs.register(_Gate)
    executor = ForkExecutor(Events(), jobs=jobs)
    started, gate = tmp_path / "started", tmp_path / "gate"
    gate.write_text("open")
    try:
        executor.start()
        job = _Gate(Payload.build("_Gate", [str(started), str(gate)]), "q")
        assert executor.execute(job, None, Stop()).kind == "ok"
    finally:
        executor.close()
    child = started.read_text()
    seen = [line.split(" ", 1) for line in calls.read_text().splitlines()]
    assert ["_Gate.perform" in name for pid, name in seen].count(True) >= 1  # by the zygote
    assert [name for pid, name in seen if pid == child] == []


class _Shown:
    """A RUNNING write due 0.3 s after the job starts (executors/base.py ``Showing``)."""

    def __init__(self) -> None:
        self.due = time.monotonic() + 0.3
        self.asked: list[float] = []

    def show(self) -> None:
        self.asked.append(time.monotonic())


class _Sleeps(Job, register=False):
    def perform(self) -> None:
        time.sleep(1.5)


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline"])
def test_the_running_write_is_asked_for_once_due_not_as_the_job_starts(mode: str) -> None:
    """No thread is woken as a job starts: the executor's own wait asks for the job's
    RUNNING write once it is due (fork, prefork: the watch's select; inline: SIGALRM)."""
    jobs = Registry()
    jobs.register(_Sleeps)
    events = Events()
    executor: ForkExecutor | PreforkExecutor | InlineExecutor
    if mode == "fork":
        executor = ForkExecutor(events, jobs=jobs)
    elif mode == "prefork":
        executor = PreforkExecutor(events, jobs=jobs)
    else:
        executor = InlineExecutor(events)
    shown = _Shown()
    try:
        executor.start()
        job = _Sleeps(Payload.build("_Sleeps", []), "q")
        assert executor.execute(job, None, Stop(lease_deadline=math.inf), lambda: shown).ok
        ended = time.monotonic()
    finally:
        executor.close()
    [asked] = shown.asked
    assert shown.due <= asked < ended


class _SleepsAsync(Job, register=False):
    async def perform(self) -> None:
        await asyncio.sleep(1.5)


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_the_running_write_is_asked_for_by_the_watchdog_once_due(mode: str) -> None:
    """Threads and asyncio modes have no wait of their own: the worker's watchdog asks,
    once the write is due (``ThreadExecutor.watch``), and once only."""
    loop = EventLoopThread() if mode == "asyncio" else None
    executor = ThreadExecutor(Events()) if loop is None else AsyncioExecutor(Events(), loop)
    job_class = _Sleeps if loop is None else _SleepsAsync
    job = job_class(Payload.build(job_class.__name__, []), "q")
    shown = _Shown()
    ended: list[float] = []

    def run() -> None:
        assert executor.execute(job, None, Stop(lease_deadline=math.inf), lambda: shown).ok
        ended.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive():  # the worker's watchdog, ticking faster
        executor.watch(time.monotonic())
        time.sleep(0.02)
    executor.close()
    [asked] = shown.asked  # once, though the watchdog ticked on while the job ran
    assert shown.due <= asked < ended[0]
    executor.watch(time.monotonic())  # after the job: nothing left to ask for
    assert len(shown.asked) == 1


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_the_worker_title_names_the_job_it_processes(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """Set as the job starts (in fork mode once the child holds it), as Resque's procline."""
    worker = procs.worker(namespace, "default", "--mode", mode)
    rq.enqueue("default", "Block", {"tag": f"title-{mode}"})
    state.wait_event("Block", "started")
    cmdline = Path(f"/proc/{worker.pid}/cmdline")

    def title() -> str | None:
        text = cmdline.read_bytes().decode()
        return text if "Processing default since" in text else None

    assert "[Block]" in wait_for(title, 30, "the worker's title")
    state.release(f"title-{mode}")
    state.wait_event("Block", "finished")
