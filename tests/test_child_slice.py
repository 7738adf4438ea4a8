"""Job children, and the workers of in-process modes, ask the scheduler for a short slice
(executors/sched.py, issue 14): woken by their job, they preempt what runs instead of
waiting for it. A fork or prefork worker keeps its own slice, and a child keeps the
policy and nice value it inherited. Real processes: a zygote forked from this process, a
prefork child, plain forks."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from e2e_support import spares, wait_for
from pyresque import Events, Job, Payload, Registry
from pyresque.executors import sched
from pyresque.executors.base import Stop
from pyresque.executors.event_loop import EventLoopThread
from pyresque.executors.forking import ForkExecutor, PreforkExecutor
from pyresque.executors.inprocess import AsyncioExecutor, InlineExecutor, ThreadExecutor


def _in_child(body: Callable[[], Any]) -> Any:
    """``body()`` run in a forked process (so this one's scheduling is left alone); its
    result, through JSON."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(reader)
            os.write(writer, json.dumps(body()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as out:
        data = out.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return json.loads(data)


def _custom_slices() -> bool:
    """Whether this kernel takes a custom slice (Linux 6.12 and later)."""
    return sched.slice_ns() is not None and _in_child(sched.short_slice) is True


needs_slices = pytest.mark.skipif(
    not _custom_slices(), reason="the kernel takes no custom scheduler slice"
)


@pytest.fixture(autouse=True)
def _default_slice() -> None:
    """This test process at the default slice: another test may have started an
    in-process executor here, which asks for the short one (and the children a zygote
    forks from this process would inherit it, whether or not they ask)."""
    sched.short_slice(0)


class _Slice(Job, register=False):
    def perform(self) -> int | None:
        return sched.slice_ns()


class _SliceAsync(Job, register=False):
    async def perform(self) -> int | None:
        return sched.slice_ns()  # on the event loop's thread


def _jobs() -> Registry:
    jobs = Registry()
    jobs.register(_Slice)
    return jobs


@needs_slices
def test_fork_modes_spare_children_wait_and_run_their_job_with_a_short_slice() -> None:
    before = sched.slice_ns()
    executor = ForkExecutor(Events(), jobs=_jobs())
    try:
        executor.start()
        ready = spares(executor)

        def short() -> bool:  # each asks for it once forked, maybe after its ready message
            return {sched.slice_ns(child.pid) for child in ready} == {sched.SLICE_NS}

        wait_for(short, 30, "the spare children's short slices")
        assert sched.slice_ns(executor.zygote.pid) == before  # the zygote keeps its own
        outcome = executor.execute(_Slice(Payload.build("_Slice", []), "q"), None, Stop())
        assert outcome.kind == "ok"
        assert outcome.result_text == str(sched.SLICE_NS)
    finally:
        executor.close()
    assert sched.slice_ns() == before  # and so does the worker


@needs_slices
def test_a_prefork_child_runs_its_jobs_with_a_short_slice() -> None:
    before = sched.slice_ns()
    executor = PreforkExecutor(Events(), jobs=_jobs())
    try:
        for _ in range(2):
            outcome = executor.execute(_Slice(Payload.build("_Slice", []), "q"), None, Stop())
            assert outcome.kind == "ok"
            assert outcome.result_text == str(sched.SLICE_NS)
    finally:
        executor.close()
    assert sched.slice_ns() == before


@needs_slices
def test_a_short_slice_keeps_the_nice_value_and_leaves_other_policies_alone() -> None:
    def niced() -> dict[str, Any]:
        nice = os.nice(3)
        took = sched.short_slice()
        return {"took": took, "nice": nice, "now": os.getpriority(os.PRIO_PROCESS, 0)}

    got = _in_child(niced)
    assert got["took"] is True
    assert got["now"] == got["nice"]  # not reset to 0 (nor raised, for a process allowed to)

    def batch() -> dict[str, Any]:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        before = sched.slice_ns()
        took = sched.short_slice()
        return {
            "took": took,
            "policy": os.sched_getscheduler(0),
            "same": sched.slice_ns() == before,
        }

    got = _in_child(batch)
    assert got["took"] is False  # an operator's SCHED_BATCH worker: its jobs may wait
    assert got["policy"] == os.SCHED_BATCH
    assert got["same"] is True


def _in_process(mode: str) -> dict[str, Any]:
    """A job run by ``mode``'s executor, started as the worker starts it (in the main
    thread; threads mode's job in a thread started after): the job's slice, the main
    thread's before the start and after."""
    sched.short_slice(0)  # the default (this test process may have started another)
    before = sched.slice_ns()
    loop = EventLoopThread() if mode == "asyncio" else None
    executor: InlineExecutor | ThreadExecutor
    if mode == "inline":
        executor = InlineExecutor(Events())
    else:
        executor = ThreadExecutor(Events()) if loop is None else AsyncioExecutor(Events(), loop)
    job_class = _SliceAsync if loop is not None else _Slice
    job = job_class(Payload.build(job_class.__name__, []), "q")
    outcomes: list[Any] = []
    try:
        executor.start()
        if mode == "inline":
            outcomes.append(executor.execute(job, None, Stop()))
        else:
            thread = threading.Thread(
                target=lambda: outcomes.append(executor.execute(job, None, Stop()))
            )
            thread.start()
            thread.join(60)
    finally:
        executor.close()
    [outcome] = outcomes
    return {"before": before, "job": outcome.result_json(), "after": sched.slice_ns()}


@needs_slices
@pytest.mark.parametrize("mode", ["inline", "threads", "asyncio"])
def test_an_in_process_worker_runs_its_jobs_with_a_short_slice(mode: str) -> None:
    got = _in_child(lambda: _in_process(mode))
    assert got["before"] != sched.SLICE_NS  # (the default: the test shows a change)
    assert got["job"] == str(sched.SLICE_NS)
    assert got["after"] == sched.SLICE_NS
