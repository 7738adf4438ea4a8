"""A password in the Redis URL never shows: not in workers' process titles (nor their
supervisor's), not in their logs (Redis going away included), not in what commands
print (their errors included), not on any dashboard page, API answer or metric.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from e2e_support import Procs, procs_fixture, wait_for
from pyresque import Resque
from pyresque.cli.main import without_settings
from pyresque.dev.server import RedisServer
from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.protocol.connection import connect, describe, ping
from pyresque.web.app import OPEN, create_app
from secure_support import admin, new_namespace

#: Looks like nothing else on the machine: a hit is a leak.
PASSWORD = f"pw-{secrets.token_hex(12)}"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:  # the worker test kills it
        command = ("ACL", "SETUSER", "app", "on", f">{PASSWORD}", "~*", "&*", "+@all")
        admin(private.url).execute_command(*command)  # type: ignore[no-untyped-call]
        yield private


def url(server: RedisServer) -> str:
    return f"redis://app:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture
def procs(server: RedisServer, tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(url(server), tmp_path)


def _titles() -> list[str]:
    """Every process title on the machine that holds the password."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if PASSWORD in title:
            found.append(title)
    return found


@pytest.mark.timeout(180)
def test_worker_titles_and_logs_hide_the_password(server: RedisServer, procs: Procs) -> None:
    ns = new_namespace()
    Resque(url(server), namespace=ns).enqueue("default", "Succeed", {"n": 1})
    env = {"E2E_REDIS_URL": url(server)}
    worker = procs.worker(ns, "default", "--count", "2", "--vverbose", env=env)
    stats = admin(server.url)
    wait_for(lambda: stats.get(f"{ns}:stat:processed") == b"1", 90, "the job ran")
    wait_for(lambda: "resque-" in worker.title(), message="the supervisor's title is set")
    wait_for(lambda: not _titles(), message="no process title holds the password")
    server.kill()  # every worker now logs that Redis is unavailable, naming the server
    worker.wait_log("Redis unavailable")
    assert f"127.0.0.1:{server.port}" in worker.log()
    assert PASSWORD not in worker.log()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyresque.cli", *args],
        env=without_settings(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: Each command's arguments (``{good}``, ``{wrong}``, ``{port}``: the server's) and exit code.
COMMANDS = {
    "works": (["info", "--json", "--redis-url", "{good}"], 0),
    "a wrong password": (["info", "--redis-url", "{wrong}"], 2),
    "nothing listening": (["workers", "--redis-url", "{good@port 1}"], 1),
    "a bad port": (["info", "--redis-url", "{good@port 99999}"], 2),
    "a bad database": (["info", "--redis-url", "{good@db x}"], 2),
    "a password parameter": (["info", "--redis-url", "redis://h:1/x?password={password}"], 2),
    "TLS settings on redis://": (["info", "--redis-url", "{good}", "--ssl-ca-certs", "/x"], 2),
    "the demo": (["demo", "--jobs", "3", "--workers", "1", "--redis-url", "{good}"], 0),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", COMMANDS)  # a test each: the workers share them out
def test_command_output_and_errors_hide_the_password(server: RedisServer, case: str) -> None:
    good = url(server)
    port = str(server.port)
    values = {
        "{good}": good,
        "{wrong}": good.replace(PASSWORD, PASSWORD[::-1]),
        "{good@port 1}": good.replace(port, "1"),
        "{good@port 99999}": good.replace(port, "99999"),
        "{good@db x}": f"{good[:-1]}x",
        "{password}": PASSWORD,
    }
    template, code = COMMANDS[case]
    args = []
    for arg in template:
        filled = arg
        for placeholder, value in values.items():
            filled = filled.replace(placeholder, value)
        args.append(filled)
    done = _cli(*args)
    assert done.returncode == code, (case, done.stderr)
    assert PASSWORD not in done.stdout + done.stderr, case
    if case == "a wrong password":
        assert "refused the credentials" in done.stderr


def test_dashboard_hides_the_password(server: RedisServer) -> None:
    ns = new_namespace()
    Resque(url(server), namespace=ns).enqueue("default", "Succeed", {"n": 1})
    shown = ""
    with TestClient(create_app(url(server), namespace=ns, auth=OPEN), "http://localhost") as web:
        for path in ("/", "/queues", "/workers", "/failed", "/delayed", "/stats", "/metrics",
                     "/api/overview", "/api/stats", "/api/workers"):  # fmt: skip
            response = web.get(path)
            assert response.status_code == 200, path
            shown += response.text
    assert f"127.0.0.1:{server.port}" in shown  # the server is named, without the password
    assert PASSWORD not in shown


#: Passwords as users write them: any text (percent-encoded in the URL).
passwords = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=4)


#: What a reference password shows, by server port (once per server).
_reference: dict[int, str] = {}


def shown_for(server: RedisServer, password: str) -> list[str]:
    """What an ACL user with ``password`` gets to see: where the producer says it is,
    dashboard pages (API and metrics too), and the messages of a wrong password,
    nothing listening, a bad port and a bad database."""
    secret = quote(password, safe="")
    command = ("ACL", "SETUSER", "any", "reset", "on", f">{password}", "~*", "+@all")
    admin(server.url).execute_command(*command)  # type: ignore[no-untyped-call]
    good = f"redis://any:{secret}@127.0.0.1:{server.port}/0"
    ns = new_namespace()
    rq = Resque(good, namespace=ns)
    rq.enqueue("default", "Succeed", {"n": 1})
    shown = [describe(rq.redis)]
    rq.redis.close()
    with TestClient(create_app(good, namespace=ns, auth=OPEN), "http://localhost") as web:
        for path in ("/", "/queues", "/api/overview", "/metrics"):
            response = web.get(path)
            assert response.status_code == 200, path
            shown.append(response.text)
    wrong = f"redis://any:{secret}x@127.0.0.1:{server.port}/0"
    for url in (wrong, f"redis://any:{secret}@127.0.0.1:1/0"):
        with pytest.raises((BadRedisURL, RedisUnavailable)) as refused:
            ping(connect(url, retries=0))
        shown.append(str(refused.value))
    for bad in (f"redis://any:{secret}@h:99999/0", f"redis://any:{secret}@h:1/x"):
        with pytest.raises(BadRedisURL) as caught:
            connect(bad)
        shown.append(str(caught.value))
    assert f"127.0.0.1:{server.port}" in shown[0]
    return shown


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(password=passwords)
def test_no_password_shows_anywhere_whatever_it_holds(server: RedisServer, password: str) -> None:
    """Hypothesis over the password, through the real paths (shown_for)."""
    secret = quote(password, safe="")
    # A password such as "    " or "Redis" is on the pages anyway, whoever logs in.
    if server.port not in _reference:
        _reference[server.port] = "".join(shown_for(server, "reference-password"))
    assume(password not in _reference[server.port])
    for text in shown_for(server, password):
        assert password not in text
        assert secret not in text
