"""Where Redis is (protocol/targets.py): the URL forms, TLS settings from the URL, the
environment and the command line, and passwords kept out of messages.

The TLS settings are checked here as parsing; test_tls.py runs them against a real
TLS server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.testclient import TestClient

from e2e_support import wait_for
from pyresque import AsyncResque, Job, Resque
from pyresque.cli.main import without_settings
from pyresque.dev.server import RedisServer
from pyresque.dev.testing import delete_namespace, run_jobs
from pyresque.exceptions import BadRedisURL
from pyresque.protocol import aio, sentinel
from pyresque.protocol.connection import connect, describe
from pyresque.protocol.targets import (
    TLS_PARAMS,
    check_url,
    redact,
    split_tls,
    tls_from_env,
    url_from_env,
    with_tls,
)
from pyresque.scheduling.scheduler import Scheduler
from pyresque.web.app import OPEN, create_app


@given(st.text(min_size=1, max_size=40))
def test_redact_hides_any_password(password: str) -> None:
    secret = quote(password, safe="")
    for url in (
        "redis://user:{}@127.0.0.1:6379/0",
        "rediss://:{}@host:6380/2",
        "redis://127.0.0.1:6379/0?db=1&password={}",
    ):
        assert redact(url.format(secret)) == url.format("***")


@given(st.text(max_size=80))
def test_check_url_refuses_with_one_error(target: str) -> None:
    """Whatever a user writes, the answer is a URL or a BadRedisURL (never a crash)."""
    try:
        check_url(target)
    except BadRedisURL as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message.strip()


def test_tls_settings_join_a_rediss_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    url = with_tls("rediss://h:6380/0", {"ssl_ca_certs": str(ca), "ssl_cert_reqs": "Required"})
    plain, kwargs = split_tls(url)
    assert plain == "rediss://h:6380/0"
    assert kwargs == {"ssl_ca_certs": str(ca), "ssl_cert_reqs": "required"}
    # A setting in the URL wins over the command line and the environment.
    assert "ssl_cert_reqs=none" in with_tls(url.replace("Required", "none"), {"ssl_cert_reqs": "x"})
    # Checking nothing means checking no host name either (redis-py would refuse the pair).
    assert split_tls("rediss://h/0?ssl_cert_reqs=none")[1]["ssl_check_hostname"] is False
    assert split_tls("rediss://h/0?ssl_check_hostname=no")[1] == {"ssl_check_hostname": False}


@pytest.mark.parametrize(
    ("url", "settings", "message"),
    [
        ("redis://h:6379/0", {"ssl_ca_certs": "/x"}, "is not rediss://"),
        ("rediss://h/0?ssl_ca_certs=/no/such/file", {}, "cannot read /no/such/file"),
        ("rediss://h/0?ssl_cert_reqs=maybe", {}, "write one of required, optional, none"),
        ("rediss://h/0?ssl_check_hostname=perhaps", {}, "write true or false"),
    ],
)
def test_bad_tls_settings_say_what_to_fix(
    url: str, settings: dict[str, str | None], message: str
) -> None:
    with pytest.raises(BadRedisURL, match=message):
        split_tls(with_tls(url, settings))


def test_tls_settings_on_a_plain_url_are_refused() -> None:
    with pytest.raises(BadRedisURL, match="is not rediss://"):
        check_url("redis://u:secret@h:6379/0?ssl_ca_certs=/x")


def test_environment_gives_tls_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("PYRESQUE_SSL_CA_CERTS", str(ca))
    assert tls_from_env()["ssl_ca_certs"] == str(ca)
    client = connect("rediss://127.0.0.1:6380/0")
    assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    with pytest.raises(BadRedisURL, match="PYRESQUE_SSL_CA_CERTS"):
        connect("redis://127.0.0.1:6379/0")


class UsersClientJob(Job):
    def perform(self) -> None:
        pass


def test_a_users_client_is_kept_and_told_what_it_lacks(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bare = redis.Redis.from_url(redis_url, socket_timeout=None, retry=Retry(NoBackoff(), 0))
    with caplog.at_level(logging.WARNING, logger="pyresque"):
        rq = Resque(bare, namespace=f"t{uuid.uuid4().hex[:8]}")
    assert rq.redis is bare
    (line,) = [r.getMessage() for r in caplog.records]
    assert "socket_timeout=15" in line
    assert "retry=" in line
    assert "socket_connect_timeout" not in line  # redis-py gave it one
    for mode in ("inline", "fork"):  # a worker on it: its lease pool gets its own timeouts
        rq.enqueue("q", UsersClientJob, {"mode": mode}, track_status=True)
        assert rq.size("q") == 1
        assert run_jobs(rq, "q", mode=mode).processed == 1
    assert rq.size("q") == 0
    assert rq.stat("processed") == 2
    assert rq.stat("failed") == 0
    delete_namespace(rq)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyresque"):
        Resque(connect(redis_url))  # what pyresque makes has everything
        Resque(redis.Redis.from_url(redis_url, socket_timeout=15, retry=Retry(NoBackoff(), 2)))
    assert caplog.records == []
    with pytest.raises(ValueError, match="without decode_responses=True"):
        Resque(redis.Redis.from_url(redis_url, decode_responses=True))


def test_php_resque_backend_forms_keep_tls_and_credentials() -> None:
    env = {"REDIS_BACKEND": "rediss://app:pw@cache.example:6380", "REDIS_BACKEND_DB": "2"}
    assert url_from_env(env) == "rediss://app:pw@cache.example:6380/2"
    env = {"REDIS_BACKEND": "tcp://cache.example:6379?ssl_ca_certs=/x", "REDIS_BACKEND_DB": "1"}
    with pytest.raises(BadRedisURL, match="is not rediss://"):
        check_url(url_from_env(env))
    assert url_from_env({"REDIS_URL": "unix:///run/r.sock?db=3"}) == "unix:///run/r.sock?db=3"
    sentinels = "redis+sentinel://app:pw@s1:26379,s2/mymaster"
    for backend, db, url, expected in (
        (sentinels, "2", f"{sentinels}/2", 2),
        (f"{sentinels}?sentinel_password=x", "2", f"{sentinels}/2?sentinel_password=x", 2),
        (f"{sentinels}/3", "2", f"{sentinels}/3", 3),  # the URL's database wins
        (sentinels, "", sentinels, 0),
    ):
        found = url_from_env({"REDIS_BACKEND": backend, "REDIS_BACKEND_DB": db})
        assert found == url, backend
        assert sentinel.parse(found).db == expected


@given(st.dictionaries(st.sampled_from(sorted(TLS_PARAMS)), st.text(max_size=30), max_size=5))
def test_any_tls_settings_are_used_or_refused_in_one_line(settings: dict[str, str]) -> None:
    """Whatever the environment or the command line says, a URL or a BadRedisURL."""
    try:
        url, kwargs = split_tls(with_tls("rediss://u:secret@h:6380/0", dict(settings)))
    except BadRedisURL as exc:
        message = str(exc)
    else:
        assert set(kwargs) <= set(TLS_PARAMS)
        assert url.startswith("rediss://u:secret@h:6380/0")
        return
    assert "\n" not in message.strip()
    # The URL's password is never shown (a setting of the user's own may be named).
    assert "secret" not in message or any("secret" in v for v in settings.values())


def test_tls_settings_reach_a_sentinel_url_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("PYRESQUE_SSL_CA_CERTS", str(ca))
    url = "rediss+sentinel://h1:26379,h2:26379/mymaster/0"
    for client in (connect(url), aio.connect(url)):  # no I/O yet; AsyncResque's too
        assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    for connects in (connect, aio.connect):
        with pytest.raises(BadRedisURL, match="is not rediss://"):
            connects("redis+sentinel://h1:26379/mymaster/0")


@pytest.mark.timeout(180)
def test_a_unix_socket_with_an_acl_user_and_a_database_works_for_every_part() -> None:
    """``unix://user:password@/path?db=N``: the producer (sync and asyncio), inline and
    fork workers (the worker's lease pool is copied from the socket client), the
    scheduler's move of a delayed job, the dashboard and a command; messages name the
    socket, not the password. (redis-py refused pyresque's TCP keepalive setting on a
    Unix socket: no unix:// target could connect.)"""
    directory = Path(tempfile.mkdtemp(prefix="pyrq-", dir="/tmp"))  # a socket path is short
    socket = directory / "redis.sock"
    password = f"unix-pw-{uuid.uuid4().hex[:8]}"
    server = RedisServer(extra_args=("--unixsocket", str(socket), "--unixsocketperm", "700"))
    with server:
        admin = redis.Redis(port=server.port)
        admin.acl_setuser("app", True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
        url = f"unix://app:{password}@{socket}?db=2"
        ns = f"t{uuid.uuid4().hex[:8]}"
        rq = Resque(url, namespace=ns)
        assert describe(rq.redis) == f"unix://{socket}?db=2"
        for mode in ("inline", "fork"):
            rq.enqueue("q", UsersClientJob, {"mode": mode})
            assert run_jobs(rq, "q", mode=mode).processed == 1
        rq.enqueue_in(0.2, "later", UsersClientJob, {})
        scheduler = Scheduler(rq)
        wait_for(lambda: scheduler.tick() + rq.size("later") > 0, 30, "the delayed job moved")
        assert rq.size("later") == 1

        async def enqueue_async() -> None:
            async with AsyncResque(url, ns) as producer:
                await producer.enqueue("later", UsersClientJob, {})

        asyncio.run(enqueue_async())
        assert rq.size("later") == 2
        admin.select(2)  # (the test's own client) the jobs are in database 2
        assert admin.llen(f"{ns}:queue:later") == 2
        done = subprocess.run(
            [sys.executable, "-m", "pyresque.cli", "info", "--json", "--redis-url", url,
             "--namespace", ns],
            env=without_settings(os.environ), capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert '"pending": 2' in done.stdout
        with TestClient(create_app(url, namespace=ns, auth=OPEN), "http://localhost") as web:
            page = web.get("/")
            assert page.status_code == 200
            assert str(socket) in page.text
        assert password not in done.stdout + done.stderr + page.text
        rq.redis.close()
        admin.close()
    shutil.rmtree(directory, ignore_errors=True)
