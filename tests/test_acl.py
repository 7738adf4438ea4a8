"""Least privilege: everything pyresque does works as an ACL user limited to the keys
of its namespace and to the commands docs/production.md lists (the rule is read from
that page, so the page and this test cannot drift apart). Redis checks every key a
Lua script touches against the user's patterns, and logs every refusal in ACL LOG:
an empty log at the end proves pyresque touched no key outside its namespace and
used no command outside the rule (none administrative: CONFIG, KEYS, SCRIPT FLUSH,
SELECT, FLUSH*, DEBUG ...).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from starlette.testclient import TestClient

from e2e_support import JOBS, Procs, procs_fixture, wait_for
from pyresque import AsyncResque, JobCancelled, JobHandle, Resque, chain, group, step
from pyresque.dev.server import RedisServer
from pyresque.jobs.unique import Unique
from pyresque.protocol.connection import text
from pyresque.web.app import OPEN, create_app
from secure_support import admin, new_namespace
from test_web_api import act, bulk_done

CONTROL = Path(__file__).resolve().parent / "control_jobs.py"
WORKFLOWS = Path(__file__).resolve().parent / "workflow_jobs.py"

DOC = Path(__file__).resolve().parents[1] / "docs" / "production.md"
SRC = Path(__file__).resolve().parents[1] / "src" / "pyresque"
LUA = SRC / "protocol" / "lua"

#: The rule as the page shows it, the user name and password being examples.
_RULE = re.compile(r"^ACL SETUSER pyresque .*$", re.MULTILINE)


def documented_rule(namespace: str, password: str) -> list[str]:
    """The ACL SETUSER arguments of docs/production.md for ``namespace``."""
    found = _RULE.findall(DOC.read_text())
    assert len(found) == 1, "docs/production.md shows one ACL SETUSER pyresque rule"
    words = found[0].split()[3:]
    return [
        w.replace("resque:", f"{namespace}:").replace(">CHANGE-ME", f">{password}") for w in words
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:  # ACL LOG is the server's: no other test shares it
        yield private


@pytest.fixture
def limited(server: RedisServer) -> Iterator[tuple[str, str]]:
    """(URL of the limited user, its namespace); the server's ACL LOG is reset first."""
    ns, password = new_namespace(), secrets.token_hex(8)
    root = admin(server.url)
    rule = documented_rule(ns, password)
    version = str(root.info("server")["redis_version"])
    if tuple(map(int, version.split(".")[:2])) >= (7, 2):
        rule.append("+client|setinfo")  # as the page says for Redis 7.2+ and Valkey
    command(root, "ACL", "SETUSER", "pyresque", "reset", *rule)
    root.acl_log_reset()
    yield f"redis://pyresque:{password}@127.0.0.1:{server.port}/0", ns
    root.acl_deluser("pyresque")
    # The module's tests share the server, and the next one's check_clean finds any key
    # outside its own namespace: a SIGKILLed worker's counters and records stay behind.
    left = list(root.scan_iter(match=f"{ns}:*", count=1000))
    if left:
        root.delete(*left)


@pytest.fixture
def procs(limited: tuple[str, str], tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(limited[0], tmp_path)


def command(client: redis.Redis, *args: str | int) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def refusals(root: redis.Redis) -> list[dict[str, Any]]:
    return cast("list[dict[str, Any]]", command(root, "ACL", "LOG"))


def test_the_rule_refuses_what_it_should(server: RedisServer, limited: tuple[str, str]) -> None:
    """The rule is really limiting: another key, an admin command, a script flush."""
    url, ns = limited
    client = redis.Redis.from_url(url)
    client.set(f"{ns}:mine", 1)
    forbidden: list[tuple[str | int, ...]] = [
        ("SET", "other:key", 1), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SCRIPT", "FLUSH"),
        ("FLUSHDB",), ("SELECT", 1), ("CLIENT", "KILL", "ID", 1),
    ]  # fmt: skip
    for args in forbidden:
        with pytest.raises(redis.exceptions.NoPermissionError):
            command(client, *args)
    assert len(refusals(admin(server.url))) == 7
    client.delete(f"{ns}:mine")


def test_the_rule_grants_every_command_the_scripts_name(server: RedisServer) -> None:
    """A script that starts calling a new command fails this at once (the run below
    would find it only if it took that path)."""
    words = {w for f in LUA.glob("*.lua") for w in re.findall(r"'([A-Z]{3,})'", f.read_text())}
    known = {text(c) for c in admin(server.url).command_list()}  # the server's commands
    called = {w.lower() for w in words} & known
    granted = {w[1:] for w in documented_rule("resque", "x") if w.startswith("+")}
    assert called - granted == set(), "add these to the rule in docs/production.md"


#: A call on a Redis client or pipeline in pyresque's code (by the names it gives them).
_CALL = re.compile(r"\b(?:redis|client|pipe|pipeline|r|conn|twin|lease|own)\.(\w+)\(")
#: redis-py methods that send no command of their name.
_NOT_COMMANDS = {"close", "pipeline", "get_connection_kwargs", "execute_command"}


def test_the_rule_grants_every_command_the_python_code_calls() -> None:
    """A net under the runs below: a redis-py command method called anywhere in
    pyresque (its dev helpers aside) must be in the rule, even on a path no run takes."""
    methods = {name for name in dir(redis.Redis) if not name.startswith("_")}
    called = set()
    for path in SRC.rglob("*.py"):
        if "dev" not in path.relative_to(SRC).parts:
            called |= {m for m in _CALL.findall(path.read_text()) if m in methods}
    assert {"hget", "evalsha", "zscan_iter"} <= called  # the pattern finds calls
    commands = {"del" if m == "delete" else m.removesuffix("_iter") for m in called}
    granted = {w[1:] for w in documented_rule("resque", "x") if w.startswith("+")}
    assert commands - _NOT_COMMANDS - granted == set(), "add these to docs/production.md"


@pytest.mark.timeout(300)  # real processes on a busy machine
def test_everything_works_as_the_limited_user(
    server: RedisServer, limited: tuple[str, str], procs: Procs
) -> None:
    url, ns = limited
    root = admin(server.url)
    rq = Resque(url, namespace=ns)
    tracked = rq.enqueue("default", "Succeed", {"n": 1}, track_status=True)
    assert tracked is not None
    rq.enqueue("default", "Succeed", {"n": 2}, unique=Unique())
    rq.enqueue("default", "Boom", {"n": 3})
    rq.enqueue("default", "AlwaysFails", {"n": 4})  # retried by the scheduler, then failed
    rq.enqueue_in(0.5, "default", "Succeed", {"n": 5})
    rq.enqueue("slow", "Block", {"tag": "t1"})
    bookkeeping = {"E2E_REDIS_URL": server.url}  # the jobs' own log (e2e_jobs.py)
    procs.cli(["scheduler", "--app", str(JOBS), "--redis-url", url, "--namespace", ns],
              ns, bookkeeping)  # fmt: skip
    victim = procs.worker(ns, "slow", env=bookkeeping)
    wait_for(lambda: root.llen(f"{ns}:e2e:log") >= 1, 90, "Block started")
    victim.send(signal.SIGKILL)  # its job is recovered by the next worker, by lease
    root.script_flush()  # the scripts are run again with EVAL, which the rule allows
    procs.worker(ns, "default,slow", "--mode", "fork", env=bookkeeping)
    procs.worker(ns, "default", "--mode", "inline", env=bookkeeping)
    wait_for(lambda: rq.stat("recovered") == 1, 90, "the killed worker's job recovered")
    root.set(f"{ns}:e2e:release:t1", 1)
    log = f"{ns}:e2e:log"
    wait_for(lambda: b'"finished"' in b"".join(cast("list[bytes]", root.lrange(log, 0, -1))),
             60, "the recovered Block finished")  # fmt: skip
    wait_for(lambda: rq.failures.count() == 2, 60, "Boom and AlwaysFails failed")

    # Admin reads and writes from the command line and the dashboard.
    for args in (["info", "--json"], ["workers", "--json"], ["failed", "list", "--json"],
                 ["failed", "retry", "--class", "Boom"], ["status", tracked],
                 ["enqueue", "idle", "Succeed", "{}"], ["delayed", "list"], ["cron", "list"],
                 ["ctl", "resume", "--all"]):  # fmt: skip
        code, output = procs.run([*args, "--redis-url", url, "--namespace", ns], ns)
        assert code == 0, output
    wait_for(lambda: rq.failures.count() == 3, 60, "the retried Boom failed again")
    with TestClient(create_app(url, namespace=ns, auth=OPEN), "http://localhost") as web:
        for path in ("/", "/queues", "/workers", "/failed", "/delayed", "/stats", "/metrics",
                     "/api/overview"):  # fmt: skip
            assert web.get(path).status_code == 200, path
        for action, fields in (("retry-failed", {"index": 0}), ("remove-failed", {"index": 0}),
                               ("remove-queue", {"queue": "idle"})):  # fmt: skip
            assert act(web, action, **fields).status_code == 200, action
        bulk_done(web, act(web, "retry-all-failed", **{"class": "AlwaysFails"}))
        bulk_done(web, act(web, "clear-retried"))

    assert rq.stat("processed") >= 4  # three Succeed and the Block (retries count too)
    check_clean(root, ns)


def some(handle: JobHandle | None) -> JobHandle:
    assert handle is not None
    return handle


def check_clean(root: redis.Redis, ns: str) -> None:
    """Nothing refused (commands and keys) and no key outside the namespace."""
    assert refusals(root) == [], json.dumps(refusals(root), default=str)[:2000]
    outside = [k for k in root.scan_iter(count=1000) if not k.startswith(f"{ns}:".encode())]
    assert outside == []


@pytest.mark.timeout(300)  # real processes on a busy machine
def test_control_workflows_and_upkeep_work_as_the_limited_user(
    server: RedisServer, limited: tuple[str, str], procs: Procs
) -> None:
    """What came after the first test: workflows (a chain, a group, a dependent cancelled
    by a failure and run after a retry), cancel (queued, delayed, running, from the
    producer, AsyncResque, the CLI and the dashboard), progress, a checkpoint resumed
    after a TERM, bulk operations on failures, a single-queue worker's landing list,
    ``batch``, ``forget-idle-queues``, and the dashboard's newer pages."""
    url, ns = limited
    root = admin(server.url)
    rq = Resque(url, namespace=ns)
    bookkeeping = {"E2E_REDIS_URL": server.url}  # the jobs' own lists (control_jobs.py)
    flow = rq.enqueue_workflow(
        chain(step("wf", "Step", 1), step("wf", "Step"), step("wf", "Step"), pass_result=True)
    )
    batch = rq.enqueue_workflow(
        group(
            step("wf", "Step", 7),
            step("wf", "Step", 8),
            on_complete=step("wf", "Callback", "complete"),
        )
    ).batch
    assert batch
    failing = some(rq.enqueue_to("wf", "Fails", "x", dependable=True))
    dependent = some(rq.enqueue_to("wf", "Step", 5, depends_on=[failing]))
    queued = some(rq.enqueue_to("idle", "Quick", 1))  # no worker serves "idle"
    delayed = some(rq.enqueue_in(3600, "ctl", "Quick", 2))
    running = some(rq.enqueue_to("ctl", "Endless", "a", track_status=True))
    dashboard_cancels = some(rq.enqueue_to("ctl", "Endless", "b", track_status=True))
    walk = some(rq.enqueue_to("walk", "Walk", 6000, 50))
    workflows = ("--app", str(WORKFLOWS))
    # A worker of one queue lands its jobs (BLMOVE onto its landing list).
    procs.worker(ns, "ctl", "--mode", "fork", *workflows, env=bookkeeping, app=CONTROL)
    procs.worker(ns, "wf", "--mode", "threads", *workflows, env=bookkeeping, app=CONTROL)

    assert rq.cancel(queued)["cancelled"]
    code, output = procs.run(["cancel", delayed, "--redis-url", url, "--namespace", ns], ns)
    assert code == 0, output
    progress = wait_for(lambda: rq.progress(running), 90, "Endless a's progress")
    assert progress.fraction == 0.25

    async def cancel_async() -> dict[str, Any]:
        async with AsyncResque(url, ns) as aio:
            assert await aio.progress(running) is not None
            return await aio.cancel(running)

    assert asyncio.run(cancel_async())["cancelled"]
    with pytest.raises(JobCancelled):
        running.result(timeout=60)
    walker = procs.worker(ns, "walk", "--mode", "threads", "--term-timeout", "0.2",
                          *workflows, env=bookkeeping, app=CONTROL)  # fmt: skip
    done = f"{ns}:ctl:done"
    wait_for(lambda: root.llen(done) >= 100, 90, "the walk past its first checkpoints")
    walker.send(signal.SIGTERM)  # given back; the next run starts from its checkpoint
    assert walker.wait_exit() == 0
    procs.worker(ns, "walk", "--mode", "fork", *workflows, env=bookkeeping, app=CONTROL)
    assert flow.jobs[-1].result(timeout=90) == 4
    assert walk.result(timeout=90) == 6000
    resumed = [int(v) for v in cast("list[bytes]", root.lrange(f"{ns}:ctl:resumed", 0, -1))]
    assert resumed[0] == 0, resumed
    assert resumed[-1] > 0, resumed  # the second run started from a checkpoint
    wait_for(lambda: rq.workflow_state(dependent) == "cancelled", 90, "the dependent cancelled")

    root.set(f"{ns}:test:fixed", 1)  # the retry succeeds and releases the dependent
    wait_for(lambda: rq.failures.count() == 1, 60, "Fails failed")

    def cli(*args: str) -> None:
        code, output = procs.run([*args, "--redis-url", url, "--namespace", ns], ns)
        assert code == 0, (args, output)

    cli("failed", "retry", "--class", "Fails")  # a bulk operation, in the foreground
    assert dependent.result(timeout=90) == 6
    for args in (["batch", batch], ["status", running], ["forget-idle-queues", "--idle", "0"],
                 ["forget-idle-queues", "--idle", "0"]):  # fmt: skip
        cli(*args)
    assert "idle" not in rq.queues()  # empty and watched by no worker: forgotten
    with TestClient(create_app(url, namespace=ns, auth=OPEN), "http://localhost") as web:
        job = wait_for(lambda: rq.progress(dashboard_cancels), 90, "Endless b's progress")
        assert job.fraction == 0.25
        assert act(web, "cancel-job", job_id=dashboard_cancels).status_code == 200
        removal = act(web, "remove-all-failed", **{"class": "Fails"})  # in the app's thread
        assert removal.status_code == 200, removal.text
        wait_for(lambda: rq.failures.count() == 0, 60, "the bulk removal")
        for path in ("/", "/workflows", f"/jobs/{flow.jobs[0]}", f"/jobs/{dashboard_cancels}",
                     "/queues/wf", "/api/bulk", "/failed"):  # fmt: skip
            assert web.get(path).status_code == 200, path
    cli("failed", "ops", "--json")
    with pytest.raises(JobCancelled):
        dashboard_cancels.result(timeout=60)
    check_clean(root, ns)
