"""Helpers for the end-to-end worker tests: real ``pyresque`` processes and polling.

Nothing here sleeps to synchronise: ``wait_for`` polls a predicate every 10 ms
until a deadline. Every process is started in a session of its own and is
SIGKILLed (with its whole process group) by ``Procs.cleanup``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import redis

from pyresque.cli.main import without_settings
from pyresque.executors.child import Child
from pyresque.executors.forking import ForkExecutor
from pyresque.executors.zygote import SPARE

TESTS = Path(__file__).resolve().parent
JOBS = TESTS / "e2e_jobs.py"
HOST = socket.gethostname()

T = TypeVar("T")

#: The processes of the running test; ``wait_for`` fails at once if one of them crashed.
_ACTIVE: list[Proc] = []


#: How long a test waits for what it expects, by default: generous, so a test holds on
#: a loaded 2-core machine (a test that passes never waits this long).
PATIENCE = 30.0


def wait_for(
    predicate: Callable[[], T | None], timeout: float = PATIENCE, message: str = "condition"
) -> T:
    """Poll ``predicate`` every 10 ms; return its first truthy value or fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        _fail_if_crashed(message)
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.01)


def spares(executor: ForkExecutor) -> list[Child]:
    """The ready children of a ``ForkExecutor`` started from this process, once its
    zygote has ``SPARE`` of them."""
    ready = executor.zygote.ready

    def all_spares() -> bool:
        executor.zygote.collect()
        return len(ready) == SPARE

    wait_for(all_spares, PATIENCE, "the spare children")
    return list(ready)


def _fail_if_crashed(message: str) -> None:
    """A process that exited with an error code (a traceback, an import error) will not
    make anything happen: fail now, with its output, instead of at the deadline."""
    for proc in _ACTIVE:
        code = proc.popen.poll()
        if code is not None and code > 0:
            pytest.fail(f"waiting for {message}, but {proc.argv} exited {code}:\n{proc.log()}")


def stays(predicate: Callable[[], bool], duration: float, message: str = "condition") -> None:
    """Assert ``predicate`` holds at every poll (10 ms) for ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), f"{message} stopped holding"
        time.sleep(0.01)
    assert predicate(), f"{message} stopped holding"


def parent_of(pid: int) -> int:
    """The parent pid of a live process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise LookupError(f"no PPid for {pid}")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process ``pid`` holds open (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def redis_connections(client: redis.Redis, pid: int) -> list[dict[str, Any]]:
    """CLIENT LIST entries of the Redis connections that process ``pid`` holds."""
    ports = _socket_ports(pid)
    found = []
    for entry in client.client_list():
        addr = str(entry.get("addr", ""))
        if addr.rsplit(":", 1)[-1].isdigit() and int(addr.rsplit(":", 1)[-1]) in ports:
            found.append(entry)
    return found


def blocked_waiting(client: redis.Redis, pid: int) -> bool:
    """True while process ``pid`` waits in a blocking command: a worker that idles, in a
    BLPOP on wake-up lists, or a BLMOVE on its one queue (landing.py)."""
    return any(
        c.get("cmd") in ("blpop", "blmove") and "b" in str(c.get("flags", ""))
        for c in redis_connections(client, pid)
    )


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` from the repository root in a session of its own (so its whole
    process group can be SIGKILLed), stdin closed, stdout and stderr to ``log_path``."""
    with open(log_path, "wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=TESTS.parent,
            start_new_session=True,
        )


def served_page(proc: Proc, url: str) -> str:
    """The page at ``url`` of the dashboard that ``proc`` serves, once uvicorn runs."""
    wait_for(lambda: "Uvicorn running" in proc.log() or not proc.running(), 60, "the dashboard")
    assert proc.running(), proc.log()
    with urllib.request.urlopen(url, timeout=30) as reply:
        return str(reply.read().decode("utf-8"))


class Proc:
    """One ``pyresque`` CLI process; its output goes to a log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, argv: list[str]) -> None:
        self.popen = popen
        self.log_path = log_path
        self.argv = argv

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = PATIENCE) -> None:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the log of {self.argv}")

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float = PATIENCE) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.argv} did not exit within {timeout} s; log:\n{self.log()}")

    def title(self) -> str:
        """The process title (setproctitle rewrites /proc/<pid>/cmdline)."""
        try:
            return Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""


class Procs:
    """Starts CLI processes and guarantees they (and their children) are killed."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.started: list[Proc] = []

    def env(self, namespace: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = without_settings(os.environ)
        env.update(E2E_REDIS_URL=self.redis_url, E2E_NS=namespace, PYTHONUNBUFFERED="1")
        env.update(extra or {})
        return env

    def cli(self, args: list[str], namespace: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``python -m pyresque.cli <args>`` (nothing added to ``args``)."""
        return self.command([sys.executable, "-m", "pyresque.cli", *args], namespace, env)

    def command(self, argv: list[str], namespace: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``argv`` (``manage.py pyresque ...``, ``flask pyresque ...``) as ``cli`` does."""
        log_path = self.tmp_path / f"proc-{len(self.started)}.log"
        proc = Proc(spawn(argv, self.env(namespace, env), log_path), log_path, argv)
        self.started.append(proc)
        _ACTIVE.append(proc)
        return proc

    def worker(
        self,
        namespace: str,
        queue: str | None = "default",
        *extra: str,
        env: dict[str, str] | None = None,
        app: Path = JOBS,
    ) -> Proc:
        """Start ``pyresque worker`` on ``namespace`` with the e2e jobs module (or ``app``)."""
        args = ["worker", "--app", str(app), "--redis-url", self.redis_url]
        args += ["--namespace", namespace]
        if queue is not None:
            args += ["--queue", queue]
        return self.cli([*args, *extra], namespace, env)

    def run(self, args: list[str], namespace: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run a CLI command to completion; returns (exit code, combined output)."""
        proc = self.cli(args, namespace)
        code = proc.wait_exit(timeout)
        return code, proc.log()

    def expect_failure(self, proc: Proc) -> None:
        """``proc`` is meant to exit with an error: ``wait_for`` must not treat it as a crash."""
        if proc in _ACTIVE:
            _ACTIVE.remove(proc)

    def cleanup(self) -> None:
        for proc in self.started:
            pgid = proc.pid
            if proc.popen.returncode is None:
                # Not reaped yet, so the pid (and our process group id) is still ours.
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait()
            else:
                _kill_session_leftovers(pgid)


def _kill_session_leftovers(sid: int) -> None:
    """SIGKILL processes still left in a session we created (e.g. orphaned job children).

    While any process is in the session, Linux does not hand its id out again; so if a
    process now *has* that pid, the session emptied and the id was reused: not ours."""
    if Path(f"/proc/{sid}").exists():
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 4 and int(fields[2]) == sid and int(fields[3]) == sid:
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def procs_fixture(redis_url: str, tmp_path: Path) -> Iterator[Procs]:
    procs = Procs(redis_url, tmp_path)
    try:
        yield procs
    finally:
        _ACTIVE.clear()
        procs.cleanup()


class NamespaceState:
    """A namespace's keys read with a bytes client: what every test's ``State`` shares."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.r = client
        self.ns = namespace

    def key(self, name: str) -> str:
        return f"{self.ns}:{name}"

    def failed(self) -> list[dict[str, Any]]:
        return [
            json.loads(x) for x in cast("list[bytes]", self.r.lrange(self.key("failed"), 0, -1))
        ]


class State(NamespaceState):
    """Reads a namespace the way the tests need it (bytes client, JSON decoded)."""

    def get(self, name: str) -> bytes | None:
        return cast("bytes | None", self.r.get(self.key(name)))

    def json(self, name: str) -> Any:
        raw = self.get(name)
        return None if raw is None else json.loads(raw)

    def exists(self, name: str) -> bool:
        return bool(self.r.exists(self.key(name)))

    def number(self, name: str) -> int:
        return int(self.get(name) or 0)

    def wait_number(self, name: str, value: int, timeout: float = PATIENCE) -> None:
        wait_for(lambda: self.number(name) == value, timeout, f"{self.key(name)} == {value}")

    def queue(self, name: str) -> list[Any]:
        return [
            json.loads(x)
            for x in cast("list[bytes]", self.r.lrange(self.key(f"queue:{name}"), 0, -1))
        ]

    def qlen(self, name: str) -> int:
        return int(self.r.llen(self.key(f"queue:{name}")))

    def wait_failed(self, count: int, timeout: float = PATIENCE) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            records = self.failed()
            return records if len(records) >= count else []

        return wait_for(found, timeout, f"{count} failure record(s) in {self.ns}")

    def workers(self) -> set[str]:
        return {m.decode() for m in cast("set[bytes]", self.r.smembers(self.key("workers")))}

    def log(self) -> list[dict[str, Any]]:
        raws = cast("list[bytes]", self.r.lrange(self.key("e2e:log"), 0, -1))
        return [json.loads(x) for x in raws]

    def events(self, job: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log()
            if (job is None or e["job"] == job) and (event is None or e["event"] == event)
        ]

    def wait_event(
        self, job: str, event: str, count: int = 1, timeout: float = PATIENCE
    ) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            hits = self.events(job, event)
            return hits if len(hits) >= count else []

        return wait_for(found, timeout, f"{count} x {job}.{event} in {self.ns}")

    def release(self, tag: str) -> None:
        self.r.set(self.key(f"e2e:release:{tag}"), "1")

    def worker_id(self, proc: Proc, queues: str = "default") -> str:
        return f"{HOST}:{proc.pid}:{queues}"

    def wait_registered(self, worker_id: str, timeout: float = PATIENCE) -> str:
        wait_for(lambda: worker_id in self.workers(), timeout, f"{worker_id} to register")
        return worker_id

    def worker_keys_gone(self, worker_id: str) -> bool:
        return (
            worker_id not in self.workers()
            and not self.exists(f"worker:{worker_id}")
            and not self.exists(f"worker:{worker_id}:started")
            and not self.exists(f"stat:processed:{worker_id}")
            and not self.exists(f"stat:failed:{worker_id}")
            and not self.r.hexists(self.key("workers:heartbeat"), worker_id)
        )

    def push_raw(self, queue: str, payload: bytes) -> None:
        """Enqueue as Ruby / php-resque do: SADD queues + RPUSH, no pyresque wake-up token."""
        self.r.sadd(self.key("queues"), queue)
        self.r.rpush(self.key(f"queue:{queue}"), payload)


ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
RESQUE_TIME = r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} UTC$"
FAILURE_FIELDS = {"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"}


def dying_worker(rq: Any, worker_id: str, lease_ms: int = 500) -> Any:
    """A ``Fetcher`` for a worker ``worker_id`` that claims and then dies: it is given a
    lease (claims need one) that expires in ``lease_ms`` and is never renewed."""
    from pyresque.worker.fetch import Fetcher
    from pyresque.worker.queue_list import QueueList

    secs, usecs = rq.redis.time()
    rq.redis.zadd(rq.keys.leases, {worker_id: secs * 1000 + usecs // 1000 + lease_ms})
    return Fetcher(rq.redis, rq.keys, worker_id, QueueList.parse("q"))
