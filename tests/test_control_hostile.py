"""Hostile input to the control of running jobs (issue 16, section 3): job ids given
to ``cancel`` (and ``cancel <id>`` commands a worker reads), progress values and
messages, checkpoint states, and progress records anyone may have written, through
the real code paths against a real Redis."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_gen import JSON, NUMBERS, TEXT
from pyresque import Job, Resque
from pyresque.protocol.commands import cancel_command
from pyresque.protocol.payload import Payload
from pyresque.protocol.progress import MAX_MESSAGE, Progress, checkpoint_json, load_checkpoint
from pyresque.protocol.reports import ReportWriter
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
IDS = TEXT | st.text(max_size=300) | st.sampled_from(["", " ", "*", "\x00", "\ud800", "a" * 10_000])


class Reporting(Job, register=False):
    def perform(self) -> None:
        pass


def a_job() -> Job:
    job = Reporting(Payload.decode(b'{"class":"Reporting","args":[],"id":"j1"}'), "q")
    job.reporter = lambda kind, text: None
    return job


@SETTINGS
@given(job_id=IDS)
def test_cancelling_any_id_answers_and_writes_only_a_short_mark(rq: Resque, job_id: str) -> None:
    """An id found nowhere changes nothing but its own cancel mark, which holds for a
    minute only (it catches a job moving between a queue and a worker meanwhile)."""
    rq.enqueue_to("q", "Kept", 1)
    queued = rq.size("q")
    rq.redis.delete(rq.keys.cancels)
    before = sorted(rq.redis.keys(f"{rq.namespace}:*"))
    if any(0xD800 <= ord(c) <= 0xDFFF for c in job_id):  # not text Redis can hold
        with pytest.raises(ValueError, match="is not valid UTF-8 text"):
            rq.cancel(job_id)
        assert sorted(rq.redis.keys(f"{rq.namespace}:*")) == before
        return
    asked_ms = time.time() * 1000
    outcome = rq.cancel(job_id)
    assert outcome == {"id": job_id, "cancelled": False, "was": None, "worker": None}
    assert sorted(rq.redis.keys(f"{rq.namespace}:*")) == sorted([*before, rq.keys.cancels.encode()])
    assert rq.redis.zrange(rq.keys.cancels, 0, -1) == [job_id.encode()]
    expires_ms = rq.redis.zscore(rq.keys.cancels, job_id)
    assert expires_ms is not None
    assert asked_ms + 50_000 <= expires_ms <= time.time() * 1000 + 60_000
    assert rq.size("q") == queued


@SETTINGS
@given(command=IDS)
def test_a_worker_ignores_cancel_commands_for_jobs_it_does_not_run(
    rq: Resque, command: str
) -> None:
    worker = Worker(rq, "q", WorkerOptions(mode="threads", concurrency=1))
    worker._command(cancel_command(command))  # the heartbeat thread's call
    assert not worker.shutting_down


@SETTINGS
@given(fraction=NUMBERS | st.booleans() | st.none() | TEXT, message=TEXT | st.none() | NUMBERS)
def test_progress_takes_fractions_from_0_to_1_and_text(fraction: Any, message: Any) -> None:
    job, sent = a_job(), []
    job.reporter = lambda kind, text: sent.append((kind, text))
    valid = (
        isinstance(fraction, (int, float))
        and not isinstance(fraction, bool)
        and 0 <= fraction <= 1
        and isinstance(message, str)
    )
    if not valid:
        with pytest.raises((TypeError, ValueError)):
            job.progress(fraction, message)
        assert sent == []
        return
    job.progress(fraction, message)
    [(kind, text)] = sent
    progress = Progress.decode(text)
    assert kind == "progress"
    assert progress is not None
    assert progress.fraction == float(fraction)
    assert len(progress.message) <= MAX_MESSAGE
    progress.message.encode()  # storable: lone surrogates escaped


@SETTINGS
@given(state=JSON)
def test_checkpoints_take_json_and_read_back_what_was_saved(state: Any) -> None:
    job, sent = a_job(), []
    job.reporter = lambda kind, text: sent.append(text)
    try:
        job.checkpoint(state)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            checkpoint_json(state)
        assert sent == []
        return
    assert load_checkpoint(sent[0]) == state


def test_a_checkpoint_nested_too_deep_is_refused() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        a_job().checkpoint(deep)


@SETTINGS
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: repr(v).encode()))
def test_any_stored_progress_reads_as_a_progress_or_none(rq: Resque, raw: bytes) -> None:
    rq.redis.set(rq.keys.progress("j"), raw)
    progress = rq.progress("j")
    if progress is not None:
        assert 0 <= progress.fraction <= 1
        assert math.isfinite(progress.updated)


def test_a_progress_key_of_another_type_reads_as_none(rq: Resque) -> None:
    rq.redis.rpush(rq.keys.progress("j"), "x")
    assert rq.progress("j") is None


def test_the_writer_keeps_the_latest_report_and_drops_an_ended_jobs(rq: Resque) -> None:
    writer = ReportWriter(rq.redis, rq.keys)
    writer.note("a", "progress", '{"fraction":0.1,"message":"","updated":1}')
    writer.note("a", "progress", '{"fraction":0.2,"message":"","updated":2}')
    writer.note("b", "checkpoint", "[1]")
    writer.ended("b")  # dropped: b ended for good
    writer.ended("a", keep=True)  # written now
    assert rq.progress("a") == Progress(0.2, "", 2.0)
    assert rq.redis.get(rq.keys.checkpoint("b")) is None
