"""Typed enqueues (jobs/typed.py): mypy and pyright accept the right calls and reject
the wrong ones (tests/typing_enqueues.py), and what a typed enqueue writes runs in a
real worker with the arguments given, keywords included."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e_support import Procs, State
from pyresque import Job, Registry, Resque
from pyresque.client.async_resque import AsyncResque
from pyresque.jobs.typed import positional, with_options

TESTS = Path(__file__).resolve().parent
CASES = TESTS / "typing_enqueues.py"
APP = str(TESTS / "observability_jobs.py")
IGNORE = re.compile(r"\s*# type: ignore\[[a-z, -]+\]$")

#: The producer side of observability_jobs.greet, in a registry of its own.
greet_registry = Registry()


@greet_registry.job(name="TypedGreet", queue="default")
def greet(name: str, times: int = 1, punctuation: str = "!") -> None:
    raise AssertionError("runs in the worker only")


def rejected_lines() -> set[int]:
    lines = CASES.read_text().splitlines()
    return {n for n, line in enumerate(lines, 1) if IGNORE.search(line)}


def run_checker(argv: list[str], tmp_path: Path, strip: bool) -> tuple[int, str]:
    """Run a type checker on the cases, their ``# type: ignore`` comments stripped or not."""
    target = tmp_path / "typing_enqueues.py"
    text = CASES.read_text()
    if strip:
        text = "\n".join(IGNORE.sub("", line) for line in text.splitlines()) + "\n"
    target.write_text(text)
    done = subprocess.run(
        [*argv, str(target)],
        check=False,
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def error_lines(output: str, name: str) -> set[int]:
    return {int(n) for n in re.findall(rf"{name}:(\d+):\d*:? ?-? ?error", output)}


def mypy() -> list[str]:
    return [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]


def pyright() -> list[str]:
    if shutil.which("node") is None:
        pytest.skip("pyright needs Node.js on PATH (Debian's nodejs)")
    return [sys.executable, "-m", "pyright", "--pythonpath", sys.executable]


@pytest.mark.parametrize("checker", [mypy, pyright], ids=["mypy", "pyright"])
def test_the_checkers_accept_the_right_calls_and_reject_each_wrong_one(
    checker: Callable[[], list[str]], tmp_path: Path
) -> None:
    argv = checker()
    code, output = run_checker(argv, tmp_path, strip=False)
    assert code == 0, output  # accepted calls pass, and every ignore was needed
    code, output = run_checker(argv, tmp_path, strip=True)
    assert code != 0
    assert error_lines(output, "typing_enqueues.py") == rejected_lines(), output
    assert len(rejected_lines()) == 11


def test_keywords_go_to_their_positions() -> None:
    def f(a: int, b: int = 2, *rest: int, flag: bool = False) -> None: ...

    assert positional(f, (1,), {}) == [1]
    assert positional(f, (), {"a": 1}) == [1]
    assert positional(f, (), {"b": 5, "a": 1}) == [1, 5]
    assert positional(f, (1, 2, 3, 4), {}) == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="'flag' by keyword only"):
        positional(f, (1,), {"flag": True})
    with pytest.raises(TypeError):
        positional(f, (), {"b": 1})  # a is missing

    class Mail(Job, register=False):
        def perform(self, to: str, count: int = 1, tag: str = "") -> None: ...

    assert positional(Mail.perform, (), {"to": "x", "tag": "t"}, method=True) == ["x", 1, "t"]


def test_typed_enqueues_run_in_a_worker_with_their_arguments(
    procs: Procs, rq: Resque, state: State, redis_url: str, namespace: str
) -> None:
    greet.enqueue(rq, "ann")
    greet.enqueue(rq, name="bob", punctuation="?")
    greet.enqueue_to(with_options(rq, at_front=True), "default", "cy", 3)

    async def produce() -> None:
        async_rq = AsyncResque(redis_url, namespace=namespace)
        try:
            await greet.enqueue(async_rq, "dee", times=2)
        finally:
            await async_rq.aclose()

    asyncio.run(produce())
    assert [p["args"] for p in state.queue("default")] == [
        ["cy", 3],
        ["ann"],
        ["bob", 1, "?"],
        ["dee", 2],
    ]
    argv = ["worker", "--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    worker = procs.cli([*argv, "--queue", "default", "--interval", "0"], namespace)
    assert worker.wait_exit(60) == 0, worker.log()
    greeted = [json.loads(line.split("greet ", 1)[1]) for line in worker.log().splitlines()
               if "userapp: greet " in line]  # fmt: skip
    assert greeted == [["cy", 3, "!"], ["ann", 1, "!"], ["bob", 1, "?"], ["dee", 2, "!"]]
    assert state.failed() == []
