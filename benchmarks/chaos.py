#!/usr/bin/env python
"""Chaos run: prove that no job is lost while workers, jobs and Redis keep dying.

What it does (everything on loopback, in a private temporary directory):

1. starts a private ``redis-server`` with the append-only file (fsync always);
2. enqueues ``--jobs`` ``ChaosJob(index)`` jobs (benchmarks/chaos_jobs.py); each
   execution records itself in the job's forked child: ``INCR <ns>:chaos:runs:<index>``
   plus its start time, worker pid and child pid;
3. starts ``pyresque worker --count <workers>`` (a supervisor and its workers);
4. every ``--kill-every`` seconds SIGKILLs a random worker process (a child of the
   supervisor, which restarts it), a random job child (forked by a worker's zygote),
   or now and then a zygote (the worker starts another);
5. restarts Redis ``--redis-restarts`` times, evenly spread over the run's progress;
6. stops killing once every job has run at least once or is in ``failed``, waits
   until nothing is queued or in flight any more, then QUITs the workers;
7. checks every job and prints a report.

Definitions used by the report:

* **ran**: the job's counter ``chaos:runs:<index>`` is at least 1;
* **duplicate**: it is more than 1 (at-least-once: a job whose worker died ran again);
* **in failed**: a record in ``failed`` holds the job's payload (a job child that was
  killed is a ``pyresque.DirtyExit``; a job whose workers died ``--max-crashes`` times
  is a ``pyresque.PoisonJob``);
* **pending**: the job is still on the queue or in a worker's in-flight record or landing list (only
  possible when the time bound was hit);
* **LOST**: the job never ran and is neither pending nor in failed: it vanished.
* **recovery time**: for each killed worker that held a job when it died (read from
  its in-flight record right after the kill), the time from the kill to the next
  recorded start of that job.

Exit status: 0 when every job ran or is in failed and none was lost; 1 when a job
was lost; 2 when the time bound was hit first (nothing lost, but not finished).
Every process it starts is stopped on exit, on Ctrl-C, on SIGTERM or on an error;
if this script is SIGKILLed, a watchdog process SIGKILLs the workers and the kernel
(PR_SET_PDEATHSIG) stops Redis (the work directory is then left in /tmp).

    python benchmarks/chaos.py                    # 5000 jobs, 4 workers, kill every 200 ms
    python benchmarks/chaos.py --quick            # 150 jobs, bounded at ~30 s (CI)
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar, cast

import redis

from pyresque import Enqueued, Resque
from pyresque.cli.main import without_settings
from pyresque.dev.server import RedisServer, find_free_port

HERE = Path(__file__).resolve().parent
JOBS_FILE = HERE / "chaos_jobs.py"
NAMESPACE = "chaos"
QUEUE = "chaos"
HOST = socket.gethostname()
_PR_SET_PDEATHSIG = 1


T = TypeVar("T")


# --- configuration -----------------------------------------------------------------


@dataclass
class Config:
    jobs: int
    workers: int
    kill_every: float
    redis_restarts: int
    lease_ttl: float
    max_seconds: float
    stall_seconds: float
    max_crashes: int
    job_ms: float
    min_worker_age: float
    min_worker_jobs: int
    redis_crash: bool
    redis_down: float
    seed: int | None
    output: Path | None
    keep: bool
    quick: bool


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Kill workers, job children and Redis while jobs run; check no job is lost.",
    )
    parser.add_argument("--jobs", type=int, default=None, help="jobs to enqueue (default 5000)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument(
        "--kill-every",
        type=float,
        default=None,
        help="seconds between two SIGKILLs; 0 kills nothing (default 0.2; 0.4 with --quick)",
    )
    parser.add_argument(
        "--redis-restarts", type=int, default=2, help="Redis restarts during the run (default 2)"
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=None,
        help="workers' --lease-ttl (default 2; 1 with --quick)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time bound for the run, stopping included (default 300; 30 with --quick)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=0.0,
        help="give up (exit 2) once no job has settled for this long, however far the "
        "time bound is: a slow, loaded machine still finishes (default 0: off)",
    )
    parser.add_argument(
        "--max-crashes", type=int, default=3, help="workers' --max-crashes (default 3)"
    )
    parser.add_argument(
        "--job-ms",
        type=float,
        default=None,
        help="each job works a random 0..N ms after recording itself (default 10; 60 with --quick)",
    )
    parser.add_argument(
        "--min-worker-age",
        type=float,
        default=None,
        help="only kill workers that have run at least this long (default 0)",
    )
    parser.add_argument(
        "--min-worker-jobs",
        type=int,
        default=None,
        help="only kill workers that have finished this many jobs since they started, so "
        "each one makes progress however slow the machine (default 0; 1 with --quick)",
    )
    parser.add_argument(
        "--redis-crash",
        action="store_true",
        help="SIGKILL Redis instead of a clean shutdown (the AOF still keeps every write)",
    )
    parser.add_argument(
        "--redis-down",
        type=float,
        default=0.0,
        help="keep Redis down this many seconds at each restart (default 0)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the kills")
    parser.add_argument("--output", type=Path, default=None, help="write a markdown report here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, AOF) afterwards"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short CI version: 150 jobs, a SIGKILL every 400 ms, bounded at 30 s, lease 1 s, "
        "jobs of 0-60 ms, workers killed once they have finished a job",
    )
    ns = parser.parse_args(argv)
    jobs = ns.jobs if ns.jobs is not None else (150 if ns.quick else 5000)
    # Quick: each kind of kill still dozens of times, with fewer worker restarts to wait
    # for (a Python start each: seconds on a loaded machine).
    kill_every = ns.kill_every if ns.kill_every is not None else (0.4 if ns.quick else 0.2)
    max_seconds = ns.max_seconds if ns.max_seconds is not None else (30.0 if ns.quick else 300.0)
    lease_ttl = ns.lease_ttl if ns.lease_ttl is not None else (1.0 if ns.quick else 2.0)
    job_ms = ns.job_ms if ns.job_ms is not None else (60.0 if ns.quick else 10.0)
    min_age = ns.min_worker_age if ns.min_worker_age is not None else 0.0
    min_jobs = ns.min_worker_jobs if ns.min_worker_jobs is not None else (1 if ns.quick else 0)
    if jobs < 1 or ns.workers < 1 or kill_every < 0 or ns.redis_restarts < 0:
        parser.error("--jobs and --workers must be >= 1, the others >= 0")
    if lease_ttl < 0.5:
        parser.error("--lease-ttl must be >= 0.5 (the worker's minimum)")
    return Config(
        jobs=jobs,
        workers=ns.workers,
        kill_every=kill_every,
        redis_restarts=ns.redis_restarts,
        lease_ttl=lease_ttl,
        max_seconds=max_seconds,
        stall_seconds=ns.stall_seconds,
        max_crashes=ns.max_crashes,
        job_ms=job_ms,
        min_worker_age=min_age,
        min_worker_jobs=min_jobs,
        redis_crash=ns.redis_crash,
        redis_down=ns.redis_down,
        seed=ns.seed,
        output=ns.output,
        keep=ns.keep,
        quick=ns.quick,
    )


# --- processes -----------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: the supervisor gets SIGKILL if this script dies (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


#: A watchdog process: when this script dies, however it dies, the pipe on the
#: watchdog's stdin closes and it SIGKILLs the supervisor's whole process group.
#: (The workers' own parent-death signal, TERM, is not enough: Redis is gone by then,
#: and a TERMed worker waits for Redis to give its job back.)
_GUARD = """
import os, signal, sys
pgid = int(sys.argv[1])
sys.stdin.buffer.read()
try:
    os.killpg(pgid, signal.SIGKILL)
except OSError:
    pass
"""


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> live (non-zombie) children, from one pass over /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 2 or fields[0] in ("Z", "X"):
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(tree: dict[int, list[int]], pid: int) -> list[int]:
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


class Interrupted(Exception):
    """SIGTERM (or SIGINT) asked this script to stop."""


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


# --- the run ---------------------------------------------------------------------------


@dataclass
class Kill:
    at: float  # time.time() of the SIGKILL
    pid: int
    kind: str  # "worker" or "job"
    jobs: list[int] | None = None  # jobs the worker held (None: not read yet / unknown)


@dataclass
class Restart:
    at: float
    down_seconds: float


@dataclass
class Report:
    config: Config
    enqueued: int = 0
    ran: int = 0
    executions: int = 0
    duplicates: int = 0
    in_failed: int = 0
    failed_never_ran: int = 0
    failed_by_exception: dict[str, int] = field(default_factory=dict)
    foreign_failures: int = 0
    pending: int = 0
    lost: list[int] = field(default_factory=list)
    worker_kills: int = 0
    zygote_kills: int = 0
    job_kills: int = 0
    kills_holding_a_job: int = 0
    recovery_times: list[float] = field(default_factory=list)
    recovery_unmeasured: int = 0  # held by a killed worker, but what it held is unknown
    held_then_failed: int = 0  # held by a killed worker, next in failed (poison, DirtyExit)
    held_still_pending: int = 0  # held by a killed worker, not restarted when the run ended
    redis_restarts: list[Restart] = field(default_factory=list)
    settled_after: float | None = None
    elapsed: float = 0.0
    complete: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    log_counts: dict[str, int] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    load_at_start: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.lost:
            return 1
        return 0 if self.complete else 2


class Chaos:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="pyresque-chaos-"))
        self.server = RedisServer(
            port=find_free_port(), appendonly=True, directory=self.workdir / "redis"
        )
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.guard: subprocess.Popen[bytes] | None = None
        self._guard_pipe = -1  # our end of the watchdog's stdin
        self.client: redis.Redis | None = None
        self.kills: list[Kill] = []
        self.first_seen: dict[int, float] = {}  # worker pid -> when we first saw it
        self.restarts: list[Restart] = []
        self.failed_seen = 0  # records of `failed` already parsed
        self.failed_jobs: dict[int, list[str]] = {}  # job index -> exceptions
        self.foreign_failures = 0  # records that are not a ChaosJob's
        self.report = Report(config)

    @property
    def log_path(self) -> Path:
        return self.workdir / "workers.log"

    def key(self, name: str) -> str:
        return f"{NAMESPACE}:{name}"

    # --- Redis access that survives restarts -------------------------------------

    def db(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def attempt(self, step: Callable[[redis.Redis], T]) -> T | None:
        """Run ``step``; None if Redis is unavailable right now (it is being restarted)."""
        try:
            return step(self.db())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return None

    def insist(self, step: Callable[[redis.Redis], T], patience: float = 30.0) -> T:
        deadline = time.monotonic() + patience
        while True:
            try:
                return step(self.db())
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    # --- phases ----------------------------------------------------------------------

    def run(self) -> Report:
        cfg = self.config
        self.report.load_at_start = os.getloadavg()[0]
        self.server.start()
        self.client = redis.Redis.from_url(
            self.server.url, socket_connect_timeout=1, socket_timeout=5
        )
        self._enqueue()
        self.report.enqueued = cfg.jobs
        started = time.monotonic()
        deadline = started + cfg.max_seconds
        self._start_workers()
        self._chaos(started, deadline)
        self._drain(deadline)
        self._stop_workers()
        self.report.elapsed = time.monotonic() - started
        self._account()
        return self.report

    def _enqueue(self) -> None:
        resque = Resque(self.server.url, namespace=NAMESPACE)
        try:
            resque.enqueue_many(Enqueued(QUEUE, "ChaosJob", [i]) for i in range(self.config.jobs))
        finally:
            resque.redis.close()

    def _start_workers(self) -> None:
        cfg = self.config
        env = without_settings(os.environ)
        env.update(
            CHAOS_REDIS_URL=self.server.url,
            CHAOS_NS=NAMESPACE,
            CHAOS_JOB_MS=str(cfg.job_ms),
            PYTHONUNBUFFERED="1",
        )
        argv = [
            sys.executable, "-m", "pyresque.cli", "worker",
            "--count", str(cfg.workers),
            "--queue", QUEUE,
            "--app", str(JOBS_FILE),
            "--lease-ttl", str(cfg.lease_ttl),
            "--interval", "1",
            "--max-crashes", str(cfg.max_crashes),
            "--redis-url", self.server.url,
            "--namespace", NAMESPACE,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.supervisor = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the rest in order
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        read_end, self._guard_pipe = os.pipe()
        try:
            self.guard = subprocess.Popen(
                [sys.executable, "-c", _GUARD, str(self.supervisor.pid)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)

    def _chaos(self, started: float, deadline: float) -> None:
        cfg = self.config
        next_kill = time.monotonic() + cfg.kill_every
        next_check = 0.0
        restarts_done = 0
        progress, progress_at = -1, started  # jobs settled, and when that last grew
        while time.monotonic() < deadline:
            self._check_supervisor()
            now = time.monotonic()
            if cfg.stall_seconds and now - progress_at > cfg.stall_seconds:
                break  # no progress: the run is stuck, not merely slow
            if cfg.kill_every > 0 and now >= next_kill:
                self._kill_one()
                next_kill = max(next_kill + cfg.kill_every, now)
            self._read_pending_kills()
            settled = self._settled() if now >= next_check else None
            if settled is not None:
                next_check = now + 0.2
                if settled > progress:
                    progress, progress_at = settled, now
                # Restart k of R at k/(R+1) of the jobs done, or of the time bound if
                # the run is slower than that: every restart happens mid-run.
                share = (restarts_done + 1) / (cfg.redis_restarts + 1)
                due = settled >= cfg.jobs * share or now - started >= cfg.max_seconds * share
                if restarts_done < cfg.redis_restarts and due:
                    self._restart_redis()
                    restarts_done += 1
                if settled >= cfg.jobs and restarts_done >= cfg.redis_restarts:
                    self.report.settled_after = time.monotonic() - started
                    break
            time.sleep(0.02)
        self._read_pending_kills(final=True)

    def _check_supervisor(self) -> None:
        assert self.supervisor is not None
        if self.supervisor.poll() is not None:
            raise RuntimeError(
                f"the worker supervisor exited ({self.supervisor.returncode}); "
                f"see {self.log_path}:\n{self._log_tail()}"
            )

    def _kill_one(self) -> None:
        assert self.supervisor is not None
        tree = process_tree()
        workers = tree.get(self.supervisor.pid, [])
        # Fork mode: a worker's child is its zygote, whose children run (or wait for) jobs.
        zygotes = [z for w in workers for z in tree.get(w, [])]
        children = [c for z in zygotes for c in tree.get(z, [])]
        now = time.monotonic()
        for pid in workers:
            self.first_seen.setdefault(pid, now)
        workers = [w for w in workers if now - self.first_seen[w] >= self.config.min_worker_age]
        if self.config.min_worker_jobs:
            workers = [w for w in workers if self._jobs_done(w) >= self.config.min_worker_jobs]
        candidates = {"worker": workers, "zygote": zygotes, "job": children}
        # Job children and workers are the usual victims; a zygote now and then (it
        # takes its running child with it, and the worker starts another). The kind is
        # drawn before looking for a victim: a tick that finds none of it kills nothing.
        # (Drawn among the kinds at hand, a loaded machine, where short jobs are rarely
        # caught running, killed a zygote on nearly every tick: a worker busy restarting
        # it ran no job, and the run stalled.)
        # A kind never killed yet and at hand goes first, so that even a short run (the
        # quick one: 20 to 40 ticks, a zygote drawn 1 time in 9) hits every kill point.
        done = {kill.kind for kill in self.kills}
        untried = [k for k, pids in candidates.items() if pids and k not in done]
        kind = untried[0] if untried else self.random.choices(list(candidates), [4, 1, 4])[0]
        if not candidates[kind]:
            return
        pid = self.random.choice(candidates[kind])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills.append(Kill(time.time(), pid, kind, None if kind == "worker" else []))

    def _jobs_done(self, pid: int) -> int:
        """Jobs the worker ``pid`` has finished (its Resque stat; 0 while Redis is away)."""
        key = self.key(f"stat:processed:{HOST}:{pid}:{QUEUE}")
        done = self.attempt(lambda r: r.get(key))
        return int(done or 0)

    def _read_pending_kills(self, final: bool = False) -> None:
        """What each killed worker held: its in-flight record, read once its last Redis
        call has surely landed and well before its lease can expire."""
        now = time.time()
        for kill in self.kills:
            if kill.jobs is not None:
                continue
            age = now - kill.at
            if age < 0.1 and not final:
                continue
            if age > 0.7 * self.config.lease_ttl:
                kill.jobs = []  # unknown: Redis was away the whole time
                self.report.recovery_unmeasured += 1
                continue
            worker = f"{HOST}:{kill.pid}:{QUEUE}"
            inflight, landing = (
                self.key(f"pyresque:{k}:{worker}") for k in ("inflight", "landing")
            )
            held = self.attempt(partial(_held, inflight=inflight, landing=landing))
            if held is not None:
                records, landed = held
                indexes = [_index_of_record(rec) for rec in records]
                indexes += [_index_of_payload(_json_or_none(item)) for item in landed]
                kill.jobs = [i for i in indexes if i is not None]

    def _settled(self) -> int | None:
        """How many jobs ran or are in failed (None while Redis is away)."""
        ran = self.attempt(lambda r: cast("set[bytes]", r.smembers(self.key("chaos:ran"))))
        if ran is None or not self._read_failed():
            return None
        indexes = {int(i) for i in ran}
        return len(indexes | set(self.failed_jobs))

    def _read_failed(self) -> bool:
        records = self.attempt(
            lambda r: cast("list[bytes]", r.lrange(self.key("failed"), self.failed_seen, -1))
        )
        if records is None:
            return False
        for record in records:
            self.failed_seen += 1
            try:
                item = json.loads(record)
                index = _index_of_payload(item.get("payload"))
            except (ValueError, AttributeError):
                index = None
            if index is None:
                self.foreign_failures += 1
            else:
                self.failed_jobs.setdefault(index, []).append(str(item.get("exception")))
        return True

    def _restart_redis(self) -> None:
        cfg = self.config
        began = time.monotonic()
        at = time.time()
        if cfg.redis_crash or cfg.redis_down > 0:
            if cfg.redis_crash:
                self.server.kill()
            else:
                self.server.stop()  # our own directory: stop() keeps it, and the port
            time.sleep(cfg.redis_down)
            self.server.start()
        else:
            self.server.restart()
        self.restarts.append(Restart(at, time.monotonic() - began))

    def _drain(self, deadline: float) -> None:
        """Stop killing; wait until nothing is queued or in flight (recovered jobs rerun)."""
        # Killed workers' jobs come back when their lease expires: give that time even
        # when the bound is near, so the final accounting sees a quiet system.
        if self.config.stall_seconds:  # draining is progress too: give it that long
            deadline = min(deadline, time.monotonic() + self.config.stall_seconds)
        limit = max(deadline, time.monotonic() + self.config.lease_ttl + 5)
        while time.monotonic() < limit:
            self._check_supervisor()
            if self.attempt(self._idle):
                return
            time.sleep(0.05)

    def _idle(self, r: redis.Redis) -> bool:
        if r.llen(self.key(f"queue:{QUEUE}")):
            return False
        if any(r.hlen(k) for k in r.scan_iter(self.key("pyresque:inflight:*"))):
            return False
        return not any(r.llen(k) for k in r.scan_iter(self.key("pyresque:landing:*")))

    def _stop_workers(self) -> None:
        """QUIT (finish the current job, then exit); TERM and KILL if that takes too long."""
        proc = self.supervisor
        if proc is None or proc.poll() is not None:
            return
        for sig, patience in ((signal.SIGQUIT, 20.0), (signal.SIGTERM, 15.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(patience)
                break
            except subprocess.TimeoutExpired:
                continue
        self.cleanup_processes()

    def cleanup_processes(self) -> None:
        """SIGKILL whatever is left of the supervisor's process group."""
        proc = self.supervisor
        if proc is None:
            return
        leftovers = descendants(process_tree(), proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in leftovers:  # a job child that left the group (it should not)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if self.guard is not None:  # its work is done: it must not outlive us
            self.guard.kill()
            self.guard.wait()
            os.close(self._guard_pipe)
            self.guard = None

    def close(self) -> None:
        try:
            self.cleanup_processes()
        finally:
            if self.client is not None:
                self.client.close()
            self.server.stop()
            if self.config.keep or self.report.lost:
                print(f"work directory kept: {self.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- accounting ------------------------------------------------------------------

    def _account(self) -> None:
        cfg = self.config
        rep = self.report
        r = self.db()
        self.insist(lambda r: r.ping())
        self._read_failed()
        runs_raw = self.insist(
            lambda r: r.mget([self.key(f"chaos:runs:{i}") for i in range(cfg.jobs)])
        )
        runs = [int(v or 0) for v in runs_raw]
        pending: set[int] = set()
        for item in cast("list[bytes]", r.lrange(self.key(f"queue:{QUEUE}"), 0, -1)):
            index = _index_of_payload(_json_or_none(item))
            if index is not None:
                pending.add(index)
        for key in r.scan_iter(self.key("pyresque:inflight:*")):
            for record in cast("list[bytes]", r.hvals(key)):
                index = _index_of_record(record)
                if index is not None:
                    pending.add(index)
        # A job a worker's idle wait moved onto its landing list is in flight too
        # (worker/landing.py), until its worker finishes it or a recovery returns it.
        for key in r.scan_iter(self.key("pyresque:landing:*")):
            for item in cast("list[bytes]", r.lrange(key, 0, -1)):
                index = _index_of_payload(_json_or_none(item))
                if index is not None:
                    pending.add(index)
        rep.ran = sum(1 for n in runs if n > 0)
        rep.executions = sum(runs)
        rep.duplicates = sum(1 for n in runs if n > 1)
        rep.in_failed = len(self.failed_jobs)
        rep.failed_never_ran = sum(1 for i in self.failed_jobs if runs[i] == 0)
        rep.failed_by_exception = dict(
            Counter(e for exceptions in self.failed_jobs.values() for e in exceptions)
        )
        rep.foreign_failures = self.foreign_failures
        rep.pending = len(pending)
        rep.lost = [
            i
            for i in range(cfg.jobs)
            if runs[i] == 0 and i not in pending and i not in self.failed_jobs
        ]
        rep.complete = rep.settled_after is not None and not pending
        rep.worker_kills = sum(1 for k in self.kills if k.kind == "worker")
        rep.zygote_kills = sum(1 for k in self.kills if k.kind == "zygote")
        rep.job_kills = sum(1 for k in self.kills if k.kind == "job")
        rep.redis_restarts = self.restarts
        self._recovery_times(r, pending)
        rep.stats = {
            name: int(cast("bytes | None", r.get(self.key(f"stat:{name}"))) or 0)
            for name in ("processed", "failed", "recovered")
        }
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        rep.log_counts = {
            "worker restarts by the supervisor": log.count("; restarting it"),
            "late finishes fenced (lost its lease)": log.count("lost its lease"),
            "dead workers' jobs recovered": log.count("recovered job"),
            "poison jobs": log.count("(poison)"),
            "'Redis unavailable' log lines": log.count("Redis unavailable"),
            "tracebacks": log.count("Traceback"),
        }
        rep.machine = machine_info(self.server.binary)

    def _recovery_times(self, r: redis.Redis, pending: set[int]) -> None:
        starts: dict[int, list[float]] = {}
        for line in cast("list[bytes]", r.lrange(self.key("chaos:starts"), 0, -1)):
            job, when, *_ = line.split()
            starts.setdefault(int(job), []).append(float(when))
        for times in starts.values():
            times.sort()
        rep = self.report
        for kill in self.kills:
            if kill.kind != "worker" or not kill.jobs:
                continue
            rep.kills_holding_a_job += 1
            for index in kill.jobs:
                times = starts.get(index, [])
                later = bisect.bisect_right(times, kill.at)
                if later < len(times):
                    rep.recovery_times.append(times[later] - kill.at)
                elif index in self.failed_jobs:
                    rep.held_then_failed += 1  # poison, or its next run's child was killed
                elif index in pending:
                    rep.held_still_pending += 1
                else:
                    rep.recovery_unmeasured += 1  # never restarted and not failed: see "lost"


# --- helpers -----------------------------------------------------------------------------


def _held(r: redis.Redis, inflight: str, landing: str) -> tuple[list[bytes], list[bytes]]:
    """A worker's in-flight records and the jobs on its landing list (worker/landing.py)."""
    return cast("list[bytes]", r.hvals(inflight)), cast("list[bytes]", r.lrange(landing, 0, -1))


def _json_or_none(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _index_of_payload(payload: Any) -> int | None:
    if isinstance(payload, (str, bytes)):
        payload = _json_or_none(payload)
    if not isinstance(payload, dict) or payload.get("class") != "ChaosJob":
        return None
    args = payload.get("args")
    if isinstance(args, list) and args and isinstance(args[0], int):
        return args[0]
    return None


def _index_of_record(record: bytes) -> int | None:
    """The job index in an in-flight record ``{"queue","payload","claimed_at"}``."""
    entry = _json_or_none(record)
    return _index_of_payload(entry.get("payload")) if isinstance(entry, dict) else None


def machine_info(binary: str | None) -> dict[str, str]:
    server = "?"
    if binary:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            banner = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            server = banner.split(" v=")[1].split()[0] if " v=" in banner else banner.strip()
    return {
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "redis-server": server,
        "platform": platform.platform(),
        "load": f"{os.getloadavg()[0]:.1f}",
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_lines(rep: Report) -> Iterator[tuple[str, str]]:
    cfg = rep.config
    yield "jobs enqueued", str(rep.enqueued)
    yield "jobs that ran at least once", str(rep.ran)
    yield "lost", str(len(rep.lost))
    yield "duplicates (ran more than once)", str(rep.duplicates)
    yield "executions in total", str(rep.executions)
    failed = ", ".join(f"{n} {e}" for e, n in sorted(rep.failed_by_exception.items()))
    yield "jobs in failed", f"{rep.in_failed}" + (f" ({failed})" if failed else "")
    yield "jobs in failed that never ran", str(rep.failed_never_ran)
    yield "still pending (queued or in flight)", str(rep.pending)
    yield (
        "kills performed",
        (
            f"{rep.worker_kills + rep.zygote_kills + rep.job_kills} ({rep.worker_kills} "
            f"workers, {rep.zygote_kills} zygotes, {rep.job_kills} job children)"
        ),
    )
    yield "killed workers holding a job", str(rep.kills_holding_a_job)
    times = rep.recovery_times
    if times:
        yield (
            "recovery time (kill -> next start)",
            (
                f"max {max(times):.2f} s, median {statistics.median(times):.2f} s, "
                f"p95 {_percentile(times, 0.95):.2f} s over {len(times)} jobs"
            ),
        )
    else:
        yield "recovery time (kill -> next start)", "n/a (no killed worker held a job)"
    if rep.held_then_failed or rep.held_still_pending or rep.recovery_unmeasured:
        yield (
            "held jobs not restarted",
            (
                f"{rep.held_then_failed} went to failed instead, {rep.held_still_pending} "
                f"still pending at the end, {rep.recovery_unmeasured} unknown"
            ),
        )
    restarts = ", ".join(f"{r.down_seconds:.2f} s" for r in rep.redis_restarts)
    kind = "SIGKILL" if cfg.redis_crash else "shutdown"
    yield "Redis restarts", f"{len(rep.redis_restarts)} ({kind}; down for {restarts or '-'})"
    settled = f"{rep.settled_after:.1f} s" if rep.settled_after is not None else "not reached"
    yield "every job ran or failed after", settled
    if rep.settled_after:
        yield (
            "throughput",
            (
                f"{rep.enqueued / rep.settled_after:.0f} jobs/s, "
                f"{rep.executions / rep.settled_after:.0f} executions/s"
            ),
        )
    yield "total time (with drain and stop)", f"{rep.elapsed:.1f} s"
    yield (
        "stats (processed / failed / recovered)",
        (
            f"{rep.stats.get('processed', 0)} / {rep.stats.get('failed', 0)} / "
            f"{rep.stats.get('recovered', 0)}"
        ),
    )
    for name, count in rep.log_counts.items():
        yield name, str(count)
    if rep.foreign_failures:
        yield "failure records without a ChaosJob payload", str(rep.foreign_failures)
    yield "complete", "yes" if rep.complete else "NO (time bound hit)"


def print_report(rep: Report) -> None:
    print("chaos run:")
    for name, value in summary_lines(rep):
        print(f"  {name}: {value}")
    m = rep.machine
    print(
        f"  machine: {m.get('nproc')} CPUs, Python {m.get('python')}, redis-server "
        f"{m.get('redis-server')}; load average {rep.load_at_start:.1f} -> {m.get('load')}"
    )
    if rep.lost:
        shown = ", ".join(str(i) for i in rep.lost[:20])
        print(f"  LOST job indexes: {shown}{' ...' if len(rep.lost) > 20 else ''}")


def markdown(rep: Report, command: str) -> str:
    cfg = rep.config
    m = rep.machine
    lines = [
        "```",
        command,
        "```",
        "",
        f"Machine: {m.get('nproc')} CPUs (`nproc`), Python {m.get('python')}, "
        f"redis-server {m.get('redis-server')}, {m.get('platform')}; load average "
        f"{rep.load_at_start:.1f} at the start, {m.get('load')} at the end (other processes "
        "included).",
        f"Settings: {cfg.jobs} jobs, {cfg.workers} workers, a SIGKILL every "
        f"{cfg.kill_every:g} s, {cfg.redis_restarts} Redis restarts, lease {cfg.lease_ttl:g} s, "
        f"max crashes {cfg.max_crashes}, jobs work 0-{cfg.job_ms:g} ms"
        + (
            f", only workers older than {cfg.min_worker_age:g} s are killed."
            if cfg.min_worker_age
            else "."
        )
        + (
            f" Only workers that finished {cfg.min_worker_jobs} job(s) are killed."
            if cfg.min_worker_jobs
            else ""
        ),
        "",
        "| measure | result |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value} |" for name, value in summary_lines(rep)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_stop_signal)
    chaos = Chaos(config)
    try:
        report = chaos.run()
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"chaos run interrupted ({exc or 'Ctrl-C'}); stopping everything", file=sys.stderr)
        return 130
    finally:
        # No more interruptions while we clean up.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        chaos.close()
    print_report(report)
    if config.output is not None:
        command = "python benchmarks/chaos.py " + " ".join(sys.argv[1:] if argv is None else argv)
        config.output.write_text(markdown(report, command.strip()))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
