"""Sentinel targets (protocol/sentinel.py) and the durability policy (protocol/durability.py).

The URL tests need no server. The durability tests run on the session's server,
which has no replica, so every ``WAIT`` falls short: what the producer and the worker
do then. The Sentinel tests start a real group (dev/sentinel_group.py): one master,
one replica, three Sentinels. The failover under load is tests/test_failover.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from e2e_support import Procs, wait_for
from pyresque import (
    AsyncResque,
    Enqueued,
    Events,
    Job,
    NotReplicated,
    Registry,
    Replicas,
    Resque,
)
from pyresque.cli.main import without_settings
from pyresque.dev.sentinel_group import SentinelGroup, ask
from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.executors.base import Stop
from pyresque.protocol import durability, sentinel
from pyresque.protocol.connection import connect, describe, lease_client, ping
from pyresque.web.app import OPEN, create_app
from pyresque.worker.failover import Failover
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

# --- the URL -------------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_service_database_and_credentials() -> None:
    target = sentinel.parse(
        "rediss+sentinel://app:p%40ss@s1:26380,[::1]:26381,s3/mymaster/3"
        "?sentinel_password=sp&sentinel_username=su&sentinel_ssl=false&ssl_ca_certs=/ca.pem"
    )
    assert target.sentinels == [("s1", 26380), ("::1", 26381), ("s3", 26379)]
    assert (target.service, target.db) == ("mymaster", 3)
    assert (target.username, target.password) == ("app", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == ("su", "sp")
    assert (target.tls, target.sentinel_tls) == (True, False)
    assert target.tls_options == {"ssl_ca_certs": "/ca.pem"}
    assert target.shown() == "rediss+sentinel://s1:26380,::1:26381,s3:26379/mymaster/3"
    plain = sentinel.parse("redis+sentinel://h:1/m")
    assert (plain.db, plain.password, plain.tls, plain.sentinel_tls) == (0, None, False, False)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://u:secret@h:26379", "names no service"),
        ("redis+sentinel://u:secret@h:0/m", "port '0'"),
        ("redis+sentinel://u:secret@h:x/m", "port 'x'"),
        ("redis+sentinel://u:secret@:26379/m", "without a host"),
        ("redis+sentinel://u:secret@h/m/one", "database 'one'"),
        ("redis+sentinel://u:secret@h/m?sentinel_password=secret&bogus=1", "unknown option"),
        ("redis+sentinel://u:secret@h/m?sentinel_ssl=maybe", "sentinel_ssl='maybe'"),
        ("redis+sentinel://u:secret@h/m?ssl_ca_certs=/ca.pem", "uses no TLS"),
    ],
)
def test_a_bad_sentinel_url_is_one_clear_error_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(BadRedisURL) as caught:
        connect(url)
    message = str(caught.value)
    assert problem in message
    assert "secret" not in message
    assert "redis+sentinel://" in message  # the form to write


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=4),
    port=st.sampled_from(["0", "70000", "x", ""]),
)
def test_no_error_shows_a_password(password: str, port: str) -> None:
    """Whatever the passwords hold, a message about the URL never shows them."""

    def url_with(secret: str) -> str:
        return f"redis+sentinel://user:{secret}@h:{port}/m?sentinel_password={secret}"

    def told(url: str) -> str:
        with pytest.raises(BadRedisURL) as caught:
            sentinel.parse(url)
        return f"{caught.value} {sentinel.redact(url)}"

    secret = quote(password, safe="")
    # A password such as "sentinel_password" or "redis" is in the message anyway.
    assume(secret not in told(url_with("pw")))
    assert secret not in told(url_with(secret))


def test_an_unreachable_sentinel_group_is_redis_unavailable_naming_it() -> None:
    client = connect("redis+sentinel://user:secret@127.0.0.1:1,127.0.0.1:2/mymaster/0")
    with pytest.raises(redis.exceptions.ConnectionError) as caught:
        ping(client)
    message = str(caught.value)
    assert "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/0" in message
    assert "secret" not in message


# --- the durability policy, with no replica to acknowledge -----------------------------


def test_a_policy_is_checked_and_read_from_the_environment() -> None:
    with pytest.raises(ValueError, match="count"):
        Replicas(0)
    with pytest.raises(ValueError, match="timeout_ms"):
        Replicas(1, 0)  # WAIT's 0 would wait for ever
    assert durability.from_env({"PYRESQUE_WAIT_REPLICAS": "2:250"}) == Replicas(2, 250)
    assert durability.from_env({"PYRESQUE_WAIT_REPLICAS": "1"}) == Replicas(1, 1000)
    assert durability.from_env({}) is None
    with pytest.raises(BadRedisURL, match="PYRESQUE_WAIT_REPLICAS"):
        durability.from_env({"PYRESQUE_WAIT_REPLICAS": "one"})


@pytest.fixture
def unreplicated(redis_url: str, namespace: str) -> Iterator[Resque]:
    """A producer that asks for a replica the session's server does not have."""
    resque = Resque(redis_url, namespace=namespace, events=Events(), durability=Replicas(1, 50))
    yield resque
    resque.redis.close()


def test_an_enqueue_no_replica_acknowledged_raises_and_may_exist(unreplicated: Resque) -> None:
    with pytest.raises(NotReplicated, match="fewer than 1 replica"):
        unreplicated.enqueue("q", "Mail", {"to": "a"})
    assert unreplicated.size("q") == 1  # written on the master: "may or may not exist"
    with pytest.raises(NotReplicated):
        unreplicated.enqueue_many([Enqueued("q", "Mail", [1]), Enqueued("q", "Mail", [2])])
    with pytest.raises(NotReplicated):
        unreplicated.push("q", {"class": "Mail", "args": []})
    assert unreplicated.size("q") == 4
    with pytest.raises(NotReplicated):
        unreplicated.enqueue_in(3600, "q", "Mail", {})
    assert unreplicated.delayed_count() == 1


def test_without_a_policy_the_same_enqueue_returns(redis_url: str, namespace: str) -> None:
    resque = Resque(redis_url, namespace=namespace, events=Events())
    assert resque.durability is None
    assert resque.enqueue("q", "Mail", {}) is not None


def test_a_worker_does_not_start_a_job_whose_claim_no_replica_has(
    unreplicated: Resque, namespace: str
) -> None:
    ran: list[int] = []
    registry = Registry()

    class Mark(Job, name="Mark", register=False):
        def perform(self) -> None:
            ran.append(1)

    registry.register(Mark)

    unreplicated.registry = registry
    with pytest.raises(NotReplicated):
        unreplicated.enqueue("q", Mark, {})
    worker = Worker(unreplicated, "q", WorkerOptions(mode="inline", interval=0.1))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        # Claims are tried again and again, with backoff, and each time given back.
        wait_for(lambda: thread.is_alive() and worker.heartbeat.is_alive(), 30, "worker up")
        time.sleep(2.0)
        assert ran == []
    finally:
        worker.shutdown()
        thread.join(30)
    assert ran == []
    assert unreplicated.size("q") == 1  # back on its queue, not in flight
    assert not unreplicated.redis.exists(f"{namespace}:pyresque:inflight:{worker.id}")
    assert int(unreplicated.redis.get(f"{namespace}:stat:recovered") or 0) == 0  # no crash


# --- a real Sentinel group --------------------------------------------------------------


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    with SentinelGroup(replicas=1) as started:
        yield started


def test_the_asyncio_producer_reaches_the_master_and_waits_for_the_replica(
    group: SentinelGroup,
) -> None:
    async def main() -> tuple[str, int]:
        policy = Replicas(1, 5000)
        async with AsyncResque(group.url(), "sentinel-aio", durability=policy) as aio:
            assert await aio.enqueue("q", "Mail", {}) is not None
            assert await aio.enqueue_many([Enqueued("q", "Mail", [1])]) != [None]
            size = int(await aio.redis.llen("sentinel-aio:queue:q"))
            await aio.redis.delete("sentinel-aio:queue:q", "sentinel-aio:queues")
            return describe(aio.redis), size

    where, size = asyncio.run(main())
    host, port = group.master_address()
    assert (where, size) == (f"{group.url()} (master {host}:{port})", 2)


def test_every_client_of_a_sentinel_target_reaches_the_master(group: SentinelGroup) -> None:
    resque = Resque(group.url(), namespace="sentinel-basic", durability=Replicas(1, 5000))
    try:
        job_id = resque.enqueue("q", "Mail", {})  # acknowledged by the replica
        assert job_id is not None
        assert resque.size("q") == 1
        host, port = group.master_address()
        assert describe(resque.redis) == f"{group.url()} (master {host}:{port})"
        lease = lease_client(resque.redis, 5.0)  # the worker's own pool, short timeouts
        assert lease.connection_pool.connection_kwargs["socket_timeout"] == 0.625
        assert lease.llen("sentinel-basic:queue:q") == 1
        lease.close()
        # The replica has it: what a promoted replica would start with.
        replica = next(n for n in group.nodes if n.port != port)
        on_replica = redis.Redis(port=replica.port)
        wait_for(lambda: on_replica.llen("sentinel-basic:queue:q") == 1, 30, "replicated")
        on_replica.close()
    finally:
        resque.redis.delete("sentinel-basic:queue:q", "sentinel-basic:queues")
        resque.redis.close()


def test_a_failover_hold_stops_jobs_and_ignores_renewals_until_it_ends() -> None:
    """Stop.hold (worker/failover.py): the lease counts as lost at once and for the whole
    hold, whatever renewals arrive meanwhile; a renewal after it counts again."""
    stop = Stop()
    stop.lease_renewed(time.monotonic() + 60)
    assert not stop.lease_lost()
    stop.hold(0.5)
    assert stop.lease_lost()
    assert stop.grace_over()  # running jobs stop now
    stop.lease_renewed(time.monotonic() + 60)  # a beat during the hold
    assert stop.lease_lost()
    wait_for(lambda: time.monotonic() >= stop.held_until, 30, "the hold's end")
    assert stop.lease_lost()  # until the next renewal
    stop.lease_renewed(time.monotonic() + 60)
    assert not stop.lease_lost()


def test_a_worker_without_the_policy_holds_at_a_move_and_gives_back_lost_finishes() -> None:
    given: list[int] = []

    def give_back() -> int:
        given.append(1)
        return 1

    stop = Stop()
    failover = Failover("w1", stop, 1.0, False, give_back)
    failover.moved(("10.0.0.8", 6379))
    assert stop.lease_lost()
    failover.after_beat()
    assert given == []  # not during the hold: claims elsewhere may still be stopping
    wait_for(lambda: time.monotonic() >= stop.held_until, 30, "the hold's end")
    failover.after_beat()
    failover.after_beat()
    assert given == [1]  # once
    durable = Stop()
    Failover("w2", durable, 1.0, True, lambda: 0).moved(("10.0.0.8", 6379))
    assert not durable.lease_lost()  # with the policy the running jobs carry on


def test_producers_scheduler_and_dashboard_follow_a_failover(tmp_path: Path) -> None:
    """Sync and asyncio producers, a scheduler process and the dashboard keep their
    client (and process) across a failover: once the Sentinels promote the replica,
    enqueues reach it, the scheduler moves a delayed job there (and logs the move once),
    and the dashboard shows the new master's data."""

    def until_enqueued(enqueue: Callable[[], object]) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                enqueue()
                return
            except redis.exceptions.ConnectionError:  # RedisUnavailable: the election
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    with SentinelGroup(replicas=1) as failing:
        url = failing.url()
        sync = Resque(url, namespace="follow", events=Events())
        aio = AsyncResque(url, "follow", events=Events())
        loop = asyncio.new_event_loop()
        procs = Procs(url, tmp_path)
        web = TestClient(create_app(url, namespace="follow", auth=OPEN), "http://localhost")
        try:
            web.__enter__()
            scheduler = procs.cli(
                ["scheduler", "--redis-url", url, "--namespace", "follow", "--interval", "0.2"],
                "follow",
            )
            sync.enqueue("q", "Mail", {})
            loop.run_until_complete(aio.enqueue("q", "Mail", {}))
            assert web.get("/api/overview").status_code == 200
            sync.enqueue_in(0.2, "before", "Mail", {})  # the scheduler is up once it moved it
            wait_for(lambda: sync.size("before") == 1, 60, "the scheduler moved a delayed job")
            old = failing.kill_master()
            new = failing.wait_failover(old)
            until_enqueued(lambda: sync.enqueue("q", "Mail", {}))
            until_enqueued(lambda: loop.run_until_complete(aio.enqueue("q", "Mail", {})))
            assert describe(sync.redis).endswith(f"(master {new[0]}:{new[1]})")
            assert describe(aio.redis).endswith(f"(master {new[0]}:{new[1]})")
            assert sync.size("q") >= 2  # the two after the failover, maybe the first two
            until_enqueued(lambda: sync.enqueue_in(0.5, "later", "Mail", {}))
            wait_for(lambda: sync.size("later") == 1, 60, "the scheduler moved the delayed job")
            scheduler.wait_log("Redis master for mymaster moved to")
            assert scheduler.log().count("moved to") == 1, scheduler.log()
            assert "Traceback" not in scheduler.log()

            def shown() -> bool:
                answer = web.get("/api/overview")
                return answer.status_code == 200 and answer.json()["counts"]["pending"] >= 3

            wait_for(shown, 60, "the dashboard reads the new master")
        finally:
            web.__exit__(None, None, None)
            procs.cleanup()
            loop.run_until_complete(aio.aclose())
            loop.close()
            sync.redis.close()


def test_sentinels_with_their_own_user_in_front_of_a_password_protected_master() -> None:
    """Sentinel's own ACL user (``sentinel_username``/``sentinel_password``) and the
    master's ACL user, in one URL, for the sync and asyncio producers and a command;
    missing or wrong credentials of either are one clear error without the password."""
    sentinel_pw, master_pw = "s3ntinel-pw-x7", "m4ster-pw-q9"
    with SentinelGroup(replicas=1) as guarded:
        for node in guarded.nodes:  # the default user stays: replication, the group's checks
            ask(node.port, lambda c: c.acl_setuser("app", True, passwords=[f"+{master_pw}"],
                                                   keys=["*"], commands=["+@all"]))  # fmt: skip
        for process in guarded.sentinels:
            ask(process.port, lambda c: c.acl_setuser("watcher", True,
                passwords=[f"+{sentinel_pw}"], commands=["+@all"]))  # fmt: skip
            ask(process.port, lambda c: c.acl_setuser("default", False))
        hosts = guarded.url().removeprefix("redis+sentinel://")
        url = (f"redis+sentinel://app:{master_pw}@{hosts}"
               f"?sentinel_username=watcher&sentinel_password={sentinel_pw}")  # fmt: skip
        try:
            resque = Resque(url, namespace="guarded", events=Events())
            assert resque.enqueue("q", "Mail", {}) is not None
            assert resque.redis.acl_whoami() in ("app", b"app")  # the master's ACL user

            async def enqueue_async() -> int:
                async with AsyncResque(url, "guarded", events=Events()) as aio:
                    await aio.enqueue("q", "Mail", {})
                    return int(await aio.redis.llen("guarded:queue:q"))

            assert asyncio.run(enqueue_async()) == 2
            resque.redis.close()
            done = subprocess.run(
                [sys.executable, "-m", "pyresque.cli", "info", "--json", "--redis-url", url,
                 "--namespace", "guarded"],
                env=without_settings(os.environ), capture_output=True, text=True, timeout=60,
                check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert '"pending": 2' in done.stdout
            assert sentinel_pw not in done.stdout + done.stderr
            assert master_pw not in done.stdout + done.stderr
            refused = {
                url.replace(sentinel_pw, "wrong"): "a Sentinel refused the credentials",
                url.partition("?")[0]: "a Sentinel refused the credentials",
                url.replace(master_pw, "wrong"): "refused the credentials",
            }
            for bad, says in refused.items():
                with pytest.raises((RedisUnavailable, BadRedisURL)) as caught:
                    ping(connect(bad, retries=0))
                assert says in str(caught.value), str(caught.value)
                assert sentinel_pw not in str(caught.value)
                assert master_pw not in str(caught.value)
        finally:  # the group's own clients stop the Sentinels as the default user
            for process in guarded.sentinels:
                client = redis.Redis(port=process.port, username="watcher", password=sentinel_pw)
                client.acl_setuser("default", True, nopass=True, commands=["+@all"])
                client.close()


def test_a_failover_loses_what_no_replica_had_and_the_policy_never_acknowledges_it() -> None:
    """The replica is cut off (it cannot log in to the master again), then the master
    dies: an enqueue without the policy was acknowledged and is gone from the new master;
    the same enqueue with the policy raised NotReplicated instead of acknowledging."""
    with SentinelGroup(replicas=1) as group:
        _, port = group.master_address()
        replica = next(node for node in group.nodes if node.port != port)
        ask(replica.port, lambda c: c.config_set("masteruser", "nobody"))  # AUTH fails
        ask(replica.port, lambda c: c.config_set("masterauth", "wrong"))
        ask(port, lambda c: c.client_kill_filter(_type="replica"))
        wait_for(lambda: ask(port, lambda c: c.info("replication"))["connected_slaves"] == 0,
                 30, "the replica cut off")  # fmt: skip
        plain = Resque(group.url(), namespace="cut", events=Events())
        durable = Resque(group.url(), namespace="cut", events=Events(), durability=Replicas(1, 200))
        try:
            assert plain.enqueue("q", "Mail", {"n": 1}) is not None  # the master alone has it
            with pytest.raises(NotReplicated):
                durable.enqueue("q", "Mail", {"n": 2})
            assert plain.size("q") == 2
            group.wait_failover(group.kill_master())

            def size() -> int | None:
                try:
                    return plain.size("q")
                except redis.exceptions.ConnectionError:  # until the client reconnects
                    return None

            wait_for(lambda: size() is not None, 60, "the new master")
            assert plain.size("q") == 0  # the acknowledged job went with the old master
        finally:
            plain.redis.close()
            durable.redis.close()
