"""What a job child does before its job comes (issue 14, pickup latency): fork mode's
spare children rehearse a payload shaped as producers write it and make their reporter
while they wait; a prefork child makes one reporter for all its jobs. Real processes:
a zygote forked from this process (as a worker started from code has), a prefork child."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e_support import spares, wait_for
from pyresque import Events, Job, Payload, Registry
from pyresque.executors import forking, zygote
from pyresque.executors.base import Stop
from pyresque.executors.child import reporter
from pyresque.executors.forking import ForkExecutor, PreforkExecutor


class _Reports(Job, register=False):
    def perform(self) -> None:
        self.progress(0.5, str(os.getpid()))


def _recording(log: Path, make: Callable[[int], Any]) -> Callable[[int], Any]:
    """``child.reporter``, noting in ``log`` which process made one, and when."""

    def reporter(fd: int) -> Any:
        with open(log, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "made": "reporter"}) + "\n")
        return make(fd)

    return reporter


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_spare_children_rehearse_a_producers_payload_and_make_their_reporter_while_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any job is sent, each spare child has decoded a payload with an id, a prefix
    and a float ``queue_time`` (what a job's first decode would otherwise do cold, copying
    pages on its way to the first line) and made the reporter its job will use."""
    log = tmp_path / "log"
    decode = Payload.decode

    class Noted(Payload):
        @classmethod
        def decode(cls, raw: bytes | str) -> Payload:
            payload = decode(raw)
            fields = {"id": payload.id, "prefix": payload.prefix, "time": payload.queue_time}
            with open(log, "a") as out:
                out.write(json.dumps({"pid": os.getpid(), "made": "payload", **fields}) + "\n")
            return payload

    monkeypatch.setattr(zygote, "Payload", Noted)
    monkeypatch.setattr(zygote, "reporter", _recording(log, reporter))
    jobs = Registry()
    jobs.register(_Reports)
    executor = ForkExecutor(Events(), jobs=jobs)
    try:
        executor.start()
        waiting = {child.pid for child in spares(executor)}

        def waiting_ready() -> bool:
            made = {(line["pid"], line["made"]) for line in _lines(log)}
            return all({(pid, "payload"), (pid, "reporter")} <= made for pid in waiting)

        wait_for(waiting_ready, 30, "the spare children to rehearse and make their reporter")
        for line in _lines(log):
            if line["made"] == "payload":
                assert line["id"]
                assert line["prefix"] == ""
                assert isinstance(line["time"], float)
        reports: list[tuple[str, str]] = []
        job = _Reports(Payload.build("_Reports", []), "q")
        job.reporter = lambda kind, text: reports.append((kind, text))
        assert executor.execute(job, None, Stop()).kind == "ok"
        [(kind, text)] = reports  # its report came through the reporter made while waiting
        assert kind == "progress"
        assert int(json.loads(text)["message"]) in waiting
    finally:
        executor.close()


def test_a_prefork_child_reports_every_job_through_one_reporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived child makes its reporter once, before its first job, and each job's
    reports still reach that job."""
    log = tmp_path / "log"
    monkeypatch.setattr(forking, "reporter", _recording(log, reporter))
    jobs = Registry()
    jobs.register(_Reports)
    executor = PreforkExecutor(Events(), jobs=jobs)
    try:
        pids = set()
        for _ in range(3):
            reports: list[str] = []
            job = _Reports(Payload.build("_Reports", []), "q")
            job.reporter = lambda kind, text, got=reports: got.append(text)
            assert executor.execute(job, None, Stop()).kind == "ok"
            [text] = reports
            pids.add(int(json.loads(text)["message"]))
        [child] = pids  # one child ran the three
        assert _lines(log) == [{"pid": child, "made": "reporter"}]
    finally:
        executor.close()
