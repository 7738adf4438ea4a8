"""``pyresque ctl pause`` and ``resume`` keep their order (worker/signals.py). They
used to be delivered as USR2 and CONT back to back; CPython may run the second
handler inside the first one (or take both in signal-number order), so ``pause,
resume`` could leave a worker paused for good. The latest request now wins."""

from __future__ import annotations

import signal
from typing import Any

from e2e_support import Procs, State, stays, wait_for
from pyresque import Resque
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker


def hooked(rq: Resque) -> tuple[Worker, list[str]]:
    """A worker (not started: its signal handlers are not installed, so the control
    signal sent to this process is ignored and the test runs each handler itself), and
    the pause hooks it runs, in order."""
    worker = Worker(rq, "q", WorkerOptions(mode="inline"))
    seen: list[str] = []
    for event in ("before_pause", "after_pause"):
        rq.events.listen(event, lambda w, event=event: seen.append(event))
    return worker, seen


def handle(worker: Worker) -> None:
    """What the main thread runs when the control signal arrives."""
    worker._on_control(signal.SIGURG, None)


def test_a_resume_handled_inside_the_pause_hook_leaves_the_worker_working(rq: Resque) -> None:
    worker, seen = hooked(rq)

    def resume_meanwhile(_: Any) -> None:
        if seen == ["before_pause"]:
            worker._command("resume")  # the heartbeat thread reads the next command...
            handle(worker)  # ...and its signal is handled inside this hook

    rq.events.listen("before_pause", resume_meanwhile)
    worker._command("pause")
    handle(worker)
    assert worker.paused is False
    assert seen == ["before_pause", "after_pause"]


def test_the_last_command_wins_in_whatever_order_the_signals_are_handled(rq: Resque) -> None:
    worker, seen = hooked(rq)
    worker._command("pause")
    worker._command("resume")
    handle(worker)  # both signals at once: one handler call (same signal, merged)
    assert worker.paused is False
    assert seen == []
    worker._command("resume")
    worker._command("pause")
    handle(worker)
    handle(worker)
    assert worker.paused is True
    assert seen == ["before_pause"]


def test_usr2_inside_a_resume_hook_pauses_again(rq: Resque) -> None:
    """Signals sent by hand keep their meaning, nested too."""
    worker, seen = hooked(rq)
    worker._on_pause(signal.SIGUSR2, None)

    def pause_meanwhile(_: Any) -> None:
        if seen.count("after_pause") == 1:
            worker._on_pause(signal.SIGUSR2, None)

    rq.events.listen("after_pause", pause_meanwhile)
    worker._on_resume(signal.SIGCONT, None)
    assert worker.paused is True
    assert seen == ["before_pause", "after_pause", "before_pause"]


def test_commands_sent_together_reach_a_running_worker_in_order(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = procs.worker(namespace, "default", "--interval", "0.2")
    wait_for(lambda: "Waiting for default" in worker.title(), 60, "the worker to idle")
    wid = state.worker_id(worker)
    control = rq.keys.control(wid)
    rq.redis.rpush(control, *["pause", "resume"] * 20)
    rq.enqueue("default", "Succeed", {"n": 1})
    wait_for(lambda: len(state.events("Succeed", "perform")) == 1, 60, "the job to run")

    rq.redis.rpush(control, *["resume", "pause"] * 20)
    wait_for(lambda: "Paused" in worker.title(), 60, "the Paused title")
    rq.enqueue("default", "Succeed", {"n": 2})
    stays(lambda: state.qlen("default") == 1, 1.0, "the job waiting while paused")
    rq.redis.rpush(control, "resume")
    wait_for(lambda: len(state.events("Succeed", "perform")) == 2, 60, "the job to run")
    assert "ctl resume: resumed" in worker.log()
