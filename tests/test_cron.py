"""Cron on real Redis: tick arithmetic (seconds, time zones, DST), resque-scheduler's
YAML format, exactly-once firing by a leader with an injected clock, misfire
policies, pause/resume, what ``pyresque cron list`` shows, and high availability:
three schedulers with the leader killed mid-tick (threads, then real processes)."""

from __future__ import annotations

import itertools
import json
import signal
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis
from click.testing import CliRunner

from e2e_support import Procs, procs_fixture, wait_for
from pyresque import Events, Job, Resque, Status
from pyresque.cli.main import main
from pyresque.scheduling.cron import Cron, Schedule, from_config, load_yaml, parse_duration
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

T0 = 1_800_000_000  # a multiple of 60 (and of 10)
BERLIN = ZoneInfo("Europe/Berlin")


class CronTask(Job):
    def perform(self, *args: Any) -> None:
        pass


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).timestamp()


def local(ts: int) -> str:
    return datetime.fromtimestamp(ts, BERLIN).isoformat()


def fired(r: redis.Redis, namespace: str, queue: str = "cron") -> list[tuple[str, int]]:
    """(schedule, tick) of every job cron enqueued, in queue order."""
    items = [
        json.loads(i) for i in cast("list[bytes]", r.lrange(f"{namespace}:queue:{queue}", 0, -1))
    ]
    return [(i["cron"]["schedule"], i["cron"]["tick"]) for i in items]


# --- ticks ----------------------------------------------------------------------------------


def test_cron_with_seconds_and_a_time_zone() -> None:
    every20s = Schedule("s", "CronTask", "cron", cron="*/20 * * * * * Europe/Berlin")
    assert every20s.tz == "Europe/Berlin"
    assert every20s.cron == "*/20 * * * * *"
    ticks = every20s.ticks(at(2026, 3, 28, 12, 0, 0), at(2026, 3, 28, 12, 1, 0))
    assert [local(t)[11:19] for t in ticks] == ["12:00:20", "12:00:40", "12:01:00"]
    nine = Schedule("n", "CronTask", "cron", cron="0 9 * * 1", tz="America/New_York")
    assert datetime.fromtimestamp(nine.next_after(T0), ZoneInfo("America/New_York")).hour == 9


def test_dst_spring_forward_runs_a_skipped_time_once_after_the_gap() -> None:
    daily = Schedule("d", "CronTask", "cron", cron="30 2 * * *", tz="Europe/Berlin")
    ticks = daily.ticks(at(2026, 3, 28, 12), at(2026, 3, 30, 12))
    assert [local(t) for t in ticks] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_dst_fall_back_runs_a_fixed_time_once_and_wildcards_by_elapsed_time() -> None:
    daily = Schedule("d", "CronTask", "cron", cron="30 2 * * *", tz="Europe/Berlin")
    ticks = daily.ticks(at(2026, 10, 24, 12), at(2026, 10, 26, 12))
    assert [local(t) for t in ticks] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    half_hourly = Schedule("h", "CronTask", "cron", cron="*/30 * * * *", tz="Europe/Berlin")
    ticks = half_hourly.ticks(at(2026, 10, 25, 1, 50), at(2026, 10, 25, 3, 10))
    assert [local(t)[11:] for t in ticks] == [
        "02:00:00+02:00",
        "02:30:00+02:00",
        "02:00:00+01:00",
        "02:30:00+01:00",
        "03:00:00+01:00",
    ]
    assert all(b - a == 1800 for a, b in itertools.pairwise(ticks))


def test_intervals_tick_at_multiples_of_their_length() -> None:
    every = Schedule("e", "CronTask", "cron", every=60)
    assert every.ticks(T0 + 1, T0 + 200) == [T0 + 60, T0 + 120, T0 + 180]
    assert every.latest(T0 + 59) == T0
    assert every.next_after(T0) == T0 + 60


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule("x", "J", "q")
    with pytest.raises(ValueError, match="invalid cron"):
        Schedule("x", "J", "q", cron="61 * * * *")
    with pytest.raises(ValueError, match="time zone"):
        Schedule("x", "J", "q", cron="* * * * *", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="misfire"):
        Schedule("x", "J", "q", every=5, misfire="sometimes")


def test_resque_scheduler_yaml(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yml"
    path.write_text(
        textwrap.dedent(
            """
            queue_documents_for_indexing:
              cron: "0 0 * * *"
              class: "QueueDocuments"
              queue: high
              args:
              description: "This job queues all content for indexing in solr"
            clear_leaderboards_contributors:
              cron: "30 6 * * 1 Europe/Berlin"
              class: "ClearLeaderboards"
              queue: low
              args: contributors
            CronTask:
              every: ["1h30m", {first_in: "120s"}]
              queue: default
              args: {"full": true}
              misfire: all
            positional:
              every: 30s
              class: Archive
              queue: q
              args: [44, "masterbrew"]
            """
        )
    )
    by_name = {s.name: s for s in load_yaml(path)}
    docs = by_name["queue_documents_for_indexing"]
    assert (docs.job, docs.queue, docs.args, docs.cron) == (
        "QueueDocuments",
        "high",
        [],
        "0 0 * * *",
    )
    assert docs.description.startswith("This job")
    board = by_name["clear_leaderboards_contributors"]
    assert (board.args, board.tz, board.cron) == (["contributors"], "Europe/Berlin", "30 6 * * 1")
    task = by_name["CronTask"]
    assert (task.job, task.every, task.args, task.misfire) == (
        "CronTask",
        5400,
        [{"full": True}],
        "all",
    )
    assert by_name["positional"].args == [44, "masterbrew"]
    assert parse_duration("2d") == 172800
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")
    with pytest.raises(ValueError, match="no queue"):
        from_config("x", {"cron": "* * * * *"})


# --- firing, with an injected clock ---------------------------------------------------------


def test_each_tick_fires_once_with_its_state(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    every = Schedule("ten", "CronTask", "cron", every=10, args=[1, "x"])
    cron = Cron(rq, [every], "s1")
    assert cron.run_once(T0 + 0.5) == 0  # starts from now: no backlog
    assert cron.run_once(T0 + 9.9) == 0
    assert cron.run_once(T0 + 10) == 1
    assert cron.run_once(T0 + 10.5) == 0  # the same tick again: nothing
    assert cron.run_once(T0 + 31) == 2  # 20 and 30
    assert fired(redis_client, namespace) == [("ten", T0 + 10), ("ten", T0 + 20), ("ten", T0 + 30)]
    job = rq.peek("cron")[0]
    assert (job["class"], job["args"]) == ("CronTask", [1, "x"])
    [state] = cronlist(rq)
    assert state["last_run"] == T0 + 31
    assert state["next_run"] == T0 + 40
    assert state["outcome"] == "enqueued"
    assert state["job_status"] == "waiting"


def cronlist(rq: Resque) -> list[dict[str, Any]]:
    """What ``pyresque cron list --json`` prints for ``rq``'s namespace."""
    kwargs = rq.redis.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    result = CliRunner().invoke(
        main, ["cron", "list", "--json", "--redis-url", url, "--namespace", rq.namespace]
    )
    assert result.exit_code == 0, result.output
    return cast("list[dict[str, Any]]", json.loads(result.output))


def test_a_scheduler_without_schedules_never_takes_the_lead(rq: Resque) -> None:
    """Workers run with --with-scheduler but no schedules must not block the one that has them."""
    idle = Cron(rq, [], "idle")
    busy = Cron(rq, [Schedule("ten", "CronTask", "cron", every=10)], "busy")
    idle.run_once(T0)
    busy.run_once(T0)
    assert not idle.leading
    assert busy.leading


def test_outcome_follows_the_job(rq: Resque) -> None:
    cron = Cron(rq, [Schedule("ten", "CronTask", "cron", every=10)], "s1")
    cron.run_once(T0)
    cron.run_once(T0 + 10)
    Worker(rq, "cron", WorkerOptions(interval=0, mode="inline")).work()
    [state] = cronlist(rq)
    assert state["job_status"] == "complete"
    assert rq.status(state["job_id"]) is Status.COMPLETE


@pytest.mark.parametrize(
    ("misfire", "expected", "outcome"),
    [
        ("skip", [], "skipped 5 missed tick(s)"),
        ("once", [T0 + 500], "ran once for 5 missed tick(s)"),
        ("all", [T0 + 100, T0 + 200, T0 + 300, T0 + 400, T0 + 500], "ran late (misfire: all)"),
    ],
)
def test_misfire_policies(
    rq: Resque,
    redis_client: redis.Redis,
    namespace: str,
    misfire: str,
    expected: list[int],
    outcome: str,
) -> None:
    """Nothing ran from T0 to T0+560: ticks 100..500 are later than the 30 s grace
    (misfires). Then tick 600, seen at T0+620, is merely late: it always runs."""
    every = Schedule("m", "CronTask", "cron", every=100, misfire=misfire, grace=30)
    Cron(rq, [every], "s1").run_once(T0)
    Cron(rq, [every], "s1").run_once(T0 + 560)
    assert [t for _, t in fired(redis_client, namespace)] == expected
    [state] = cronlist(rq)
    assert state["outcome"] == outcome
    assert state["next_run"] == T0 + 600
    Cron(rq, [every], "s1").run_once(T0 + 620)
    assert [t for _, t in fired(redis_client, namespace)] == [*expected, T0 + 600]


def test_pause_and_resume(
    rq: Resque, redis_client: redis.Redis, namespace: str, redis_url: str
) -> None:
    cron = Cron(rq, [Schedule("p", "CronTask", "cron", every=10)], "s1")
    cron.run_once(T0)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(
            main, [*args, "--redis-url", redis_url, "--namespace", namespace]
        )
        assert result.exit_code == 0, result.output
        return result.output

    assert "paused p" in cli("cron", "pause", "p")
    cron.run_once(T0 + 25)
    assert fired(redis_client, namespace) == []
    assert cronlist(rq)[0]["paused"] is True
    assert cronlist(rq)[0]["outcome"] == "paused"
    assert "resumed p" in cli("cron", "resume", "p")
    cron.run_once(T0 + 31)
    assert fired(redis_client, namespace) == [("p", T0 + 30)]  # no backlog
    table = cli("cron", "list")
    assert "every 10s" in table
    assert "active" in table
    unknown = CliRunner().invoke(
        main, ["cron", "pause", "nope", "--redis-url", redis_url, "--namespace", namespace]
    )
    assert unknown.exit_code != 0


# --- high availability -----------------------------------------------------------------------


class Crash(Exception):
    pass


@pytest.mark.parametrize("count", [2, 3])
def test_schedulers_leader_killed_mid_tick_no_duplicate_no_gap(
    redis_url: str, namespace: str, redis_client: redis.Redis, count: int
) -> None:
    """Two or three schedulers share one injected clock. The leader dies in the middle of a tick
    (after firing schedule "a", before "b"); a follower takes over once the lease
    expires, and fires "b"'s pending ticks and everything after, exactly once."""
    clock = {"now": float(T0)}
    plan = [
        Schedule("a", "CronTask", "cron", every=1),
        Schedule("b", "CronTask", "cron", every=1),
    ]
    crons = [
        Cron(
            Resque(redis_url, namespace=namespace, events=Events()),
            plan,
            f"s{i}",
            lease=0.3,
            clock=lambda: clock["now"],
        )
        for i in range(count)
    ]
    for c in crons:
        c.run_once()
    leader = next(c for c in crons if c.leading)
    for _ in range(3):
        clock["now"] += 1
        for c in crons:
            c.run_once()
    # The leader dies between two schedules of the next tick.
    clock["now"] += 1
    real_fire = leader._fire

    def fire_then_die(schedule: Schedule, *args: Any, **kwargs: Any) -> int:
        if schedule.name == "b":
            raise Crash
        return real_fire(schedule, *args, **kwargs)

    leader._fire = fire_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        leader.run_once()
    survivors = [c for c in crons if c is not leader]
    deadline = time.monotonic() + 5
    while not any(c.leading for c in survivors):  # the lease (0.3 s, Redis clock) expires
        assert time.monotonic() < deadline
        clock["now"] += 0.25
        for c in survivors:
            c.run_once()
        time.sleep(0.05)
    for _ in range(3):
        clock["now"] += 1
        for c in survivors:
            c.run_once()
    end = int(clock["now"])
    for name in ("a", "b"):
        ticks = [t for s, t in fired(redis_client, namespace) if s == name]
        assert ticks == list(range(T0 + 1, end + 1)), name


def test_concurrent_schedulers_in_threads_fire_each_tick_once(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    """Three schedulers racing, whichever leads: every tick once."""
    clock = {"now": float(T0)}
    plan = [Schedule("t", "CronTask", "cron", every=1)]
    crons = [
        Cron(
            Resque(redis_url, namespace=namespace, events=Events()),
            plan,
            f"s{i}",
            lease=5,
            clock=lambda: clock["now"],
        )
        for i in range(3)
    ]
    crons[0].run_once()
    stop = threading.Event()

    def loop(cron: Cron) -> None:
        while not stop.is_set():
            cron.run_once()

    threads = [threading.Thread(target=loop, args=(c,)) for c in crons]
    for t in threads:
        t.start()
    for _ in range(50):
        clock["now"] += 0.5
        time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join()
    crons[0].run_once()
    ticks = [t for _, t in fired(redis_client, namespace)]
    assert Counter(ticks).most_common(1)[0][1] == 1
    assert ticks == list(range(T0 + 1, int(clock["now"]) + 1))


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(redis_url, tmp_path)


def test_scheduler_processes_with_the_leader_sigkilled(
    procs: Procs, redis_url: str, namespace: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Real ``pyresque scheduler`` processes, a schedule every second from a YAML file:
    SIGKILL the leader; the ticks on the queue stay consecutive (no gap, no duplicate)."""
    schedule = tmp_path / "schedule.yml"
    schedule.write_text("heartbeat:\n  every: 1s\n  class: CronTask\n  queue: cron\n")
    args = ["scheduler", "--schedule", str(schedule), "--lease", "1", "--interval", "0.1"]
    args += ["--redis-url", redis_url, "--namespace", namespace]
    schedulers = [procs.cli(args, namespace) for _ in range(3)]
    leader_key = f"{namespace}:pyresque:cron:leader"

    def leader_pid() -> int | None:
        value = cast("bytes | None", redis_client.get(leader_key))
        return int(value.decode().split(":")[1]) if value else None

    first = wait_for(leader_pid, 10, "a cron leader")
    wait_for(lambda: len(fired(redis_client, namespace)) >= 2, 10, "two ticks")
    victim = next(s for s in schedulers if s.pid == first)
    victim.send(signal.SIGKILL)
    killed_at = time.time()
    wait_for(lambda: (leader_pid() or first) != first, 10, "a new leader")
    wait_for(
        lambda: any(t > killed_at + 1 for _, t in fired(redis_client, namespace)),
        10,
        "ticks after the failover",
    )
    for s in schedulers:
        if s is not victim:
            s.send(signal.SIGTERM)
    for s in schedulers:
        if s is not victim:
            assert s.wait_exit(10) == 0
    ticks = [t for _, t in fired(redis_client, namespace)]
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks
    assert redis_client.get(leader_key) is None  # a clean stop resigns at once
