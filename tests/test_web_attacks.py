"""The dashboard against the web's usual attacks: DNS rebinding (the Host header check),
a mounted app without an auth decision, sessions that never end, and password guessing."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, cast

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

from e2e_support import wait_for
from pyresque import Resque
from pyresque.web.app import OPEN, WebConfigError, create_app
from pyresque.web.auth import LOCAL_HOSTS, SESSION_COOKIE, allowed_hosts
from pyresque.web.sessions import FREE_FAILURES
from test_web_support import LOCAL, free_port, rq

__all__ = ["rq"]


@pytest.fixture
def app(redis_url: str, rq: Resque) -> Starlette:
    return create_app(redis_url, namespace=rq.namespace, auth=OPEN)


# --- the Host header ------------------------------------------------------------------


@pytest.mark.parametrize(
    "base", ["http://localhost", "http://localhost:5678", "http://127.0.0.1", "http://[::1]:80"]
)
def test_local_host_names_are_served(app: Starlette, base: str) -> None:
    with TestClient(app, base) as client:
        assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5678", "localhost.evil.example", "127.0.0.1.nip.io", ""]
)
def test_other_host_names_get_400_saying_why(app: Starlette, host: str) -> None:
    with TestClient(app, LOCAL) as client:
        for path in ("/", "/api/overview", "/static/app.js", "/login", "/metrics"):
            response = client.get(path, headers={"host": host})
            assert response.status_code == 400, (host, path)
            assert response.text.startswith("invalid Host header")
            assert "--allowed-host" in response.text
            assert response.text.count("\n") == 1
        token = client.get("/api/csrf").json()["csrf_token"]
        refused = client.post(
            "/api/actions/clear-failed", headers={"host": host, "x-csrf-token": token}
        )
        assert refused.status_code == 400


def test_configured_host_names_are_served(redis_url: str, rq: Resque) -> None:
    app = create_app(redis_url, namespace=rq.namespace, auth=OPEN, allowed_hosts=["Dash.Example"])
    with TestClient(app, "http://dash.example:8080") as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"host": "DASH.example."}).status_code == 200
        assert client.get("/", headers={"host": "other.example"}).status_code == 400
    anything = create_app(redis_url, namespace=rq.namespace, auth=OPEN, allowed_hosts=["*"])
    with TestClient(anything, "http://whatever.example") as client:
        assert client.get("/").status_code == 200


def test_allowed_host_names_ignore_wildcard_addresses() -> None:
    assert allowed_hosts(["0.0.0.0", "::", ""]) == LOCAL_HOSTS
    assert allowed_hosts(["10.1.2.3", "fe80::1", "[fe80::2]:80", "a.example:1"]) == LOCAL_HOSTS | {
        "10.1.2.3",
        "fe80::1",
        "fe80::2",
        "a.example",
    }


def fetch(url: str, host: str | None = None) -> tuple[int, str]:
    """GET ``url`` (with this Host header): status and body."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def web_process(redis_url: str, rq: Resque) -> Iterator[str]:
    """``pyresque web`` as a real process, with one extra host name; yields its URL."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "PYRESQUE_WEB_ALLOWED_HOSTS": "dash.example"}
    argv = [sys.executable, "-m", "pyresque.cli", "web", "--port", str(port)]
    argv += ["--namespace", rq.namespace]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch(url + "/api")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"pyresque web did not start: {err[-2000:]}")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()


def test_the_web_command_answers_to_its_address_and_configured_names(web_process: str) -> None:
    assert fetch(web_process + "/")[0] == 200  # Host: 127.0.0.1:<port>
    assert fetch(web_process + "/", "dash.example")[0] == 200
    status, text = fetch(web_process + "/", "rebound.evil.example")
    assert status == 400
    assert "invalid Host header 'rebound.evil.example'" in text


# --- the auth decision of a mounted app -------------------------------------------------


def test_create_app_needs_an_explicit_auth_decision(redis_url: str, rq: Resque) -> None:
    with pytest.raises(WebConfigError, match="explicit auth decision") as raised:
        create_app(redis_url, namespace=rq.namespace)
    assert "\n" not in str(raised.value)
    with pytest.raises(WebConfigError, match='callable or "open"'):
        create_app(redis_url, namespace=rq.namespace, auth="none")
    for decided in (
        {"auth": OPEN},
        {"read_only": True},
        {"auth_token": "t"},
        {"basic_auth": "u:p"},
        {"auth": lambda request: True},
    ):
        create_app(redis_url, namespace=rq.namespace, **decided)


def test_the_host_apps_own_check_decides(redis_url: str, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, b"null")

    def staff_only(request: Request) -> bool:
        return request.headers.get("x-user") == "alice"

    dashboard = create_app(redis_url, namespace=rq.namespace, auth=staff_only)
    host = Starlette(routes=[Mount("/jobs", dashboard)])
    with TestClient(host, LOCAL) as client:
        assert client.get("/jobs/").status_code == 401
        assert client.get("/jobs/api/overview", headers={"x-user": "mallory"}).status_code == 401
        alice = {"x-user": "alice"}
        assert client.get("/jobs/api/overview", headers=alice).status_code == 200
        # A browser session of the host app: actions still need the CSRF token.
        refused = client.post("/jobs/api/actions/clear-failed", headers=alice)
        assert refused.status_code == 403
        token = client.get("/jobs/api/csrf", headers=alice).json()["csrf_token"]
        done = client.post(
            "/jobs/api/actions/clear-failed", headers={**alice, "x-csrf-token": token}
        )
        assert done.json() == {"ok": True, "action": "clear-failed", "count": 1}


# --- sessions ----------------------------------------------------------------------------

TOKEN = "s3cret-token"


def sign_in(client: TestClient, token: str = TOKEN) -> Any:
    """POST the sign-in form with a fresh CSRF token; returns the response."""
    form = client.get("/login").text  # public, so it works while the address must wait
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', form)
    assert match, form
    return client.post(
        "/login",
        data={"csrf_token": match.group(1), "token": token, "next": "/"},
        follow_redirects=False,
    )


def token_app(redis_url: str, rq: Resque, **options: Any) -> Starlette:
    return create_app(redis_url, namespace=rq.namespace, auth_token=TOKEN, **options)


def signed_in(app: Starlette) -> tuple[TestClient, str]:
    client = TestClient(app, LOCAL)
    assert sign_in(client).status_code == 303
    session = client.cookies[SESSION_COOKIE]
    assert client.get("/api/overview").status_code == 200
    return client, session


def csrf_of(client: TestClient) -> str:
    return str(client.get("/api/csrf").json()["csrf_token"])


def test_signing_out_ends_the_session_on_the_server(redis_url: str, rq: Resque) -> None:
    client, session = signed_in(token_app(redis_url, rq))
    out = client.post("/logout", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set(SESSION_COOKIE, session)  # a copy of the cookie, kept by a thief
    assert client.get("/api/overview").status_code == 401


def test_signing_out_everywhere_ends_every_session(redis_url: str, rq: Resque) -> None:
    app = token_app(redis_url, rq)
    laptop, _ = signed_in(app)
    phone, _ = signed_in(token_app(redis_url, rq))  # another process serving the same namespace
    everywhere = {"csrf_token": csrf_of(laptop), "everywhere": "1"}
    assert laptop.post("/logout", data=everywhere, follow_redirects=False).status_code == 303
    assert phone.get("/api/overview").status_code == 401
    again, _ = signed_in(app)  # signing in afresh works
    assert again.get("/").status_code == 200


def test_sessions_end_when_idle_and_after_the_maximum(redis_url: str, rq: Resque) -> None:
    client, session = signed_in(token_app(redis_url, rq, session_seconds=(600, 3600)))
    key = rq.keys.web_session(hashlib.sha256(session.encode()).hexdigest())
    assert 0 < rq.redis.ttl(key) <= 600  # stored with its idle timeout...
    rq.redis.expire(key, 60)
    assert client.get("/api/overview").status_code == 200
    assert rq.redis.ttl(key) > 60  # ...which each use starts again
    rq.redis.pexpire(key, 1)  # left unused for the idle time
    wait_for(lambda: not rq.redis.exists(key), 30, "the session key expires")
    assert client.get("/api/overview").status_code == 401

    client, session = signed_in(token_app(redis_url, rq, session_seconds=(600, 3600)))
    key = rq.keys.web_session(hashlib.sha256(session.encode()).hexdigest())
    issued, rest = cast(bytes, rq.redis.get(key)).split(b" ", 1)
    rq.redis.set(key, b"%d %s" % (int(issued) - 3601, rest), ex=600)  # signed in long ago
    assert client.get("/api/overview").status_code == 401


def test_a_new_token_voids_the_sessions_of_the_old_one(redis_url: str, rq: Resque) -> None:
    _, session = signed_in(token_app(redis_url, rq))
    renewed = create_app(redis_url, namespace=rq.namespace, auth_token="new-token")
    with TestClient(renewed, LOCAL, cookies={SESSION_COOKIE: session}) as client:
        assert client.get("/api/overview").status_code == 401


def test_session_keys_of_any_content_never_break_sign_in(redis_url: str, rq: Resque) -> None:
    rq.redis.hset(rq.keys.web_epoch, "a", "b")  # not what the dashboard writes
    client, session = signed_in(token_app(redis_url, rq))
    key = rq.keys.web_session(hashlib.sha256(session.encode()).hexdigest())
    for junk in (b"", b"x y z", b"\xff", b"99999999999999999999999 0 0"):
        rq.redis.set(key, junk)
        assert client.get("/api/overview").status_code == 401
    rq.redis.delete(key)
    rq.redis.lpush(key, b"x")
    assert client.get("/api/overview").status_code == 401


# --- guessing --------------------------------------------------------------------------


def test_failed_sign_ins_are_slowed_down_across_processes(redis_url: str, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, b"null")
    first = TestClient(token_app(redis_url, rq), LOCAL)
    for _ in range(FREE_FAILURES):
        assert sign_in(first, "guess").status_code == 401
    locked = sign_in(first, "guess")
    assert locked.status_code == 429
    assert "try again in 2 s" in locked.text
    assert locked.headers["retry-after"] == "2"
    # Meanwhile nothing from this address is even checked, in any process: not the right
    # token in the form, not the bearer token. (The wait is made longer here so that a
    # slow machine cannot see it end in the middle.)
    lockout = rq.keys.web_lockout("testclient")
    rq.redis.expire(lockout, 60)
    second = TestClient(token_app(redis_url, rq), LOCAL)
    assert sign_in(second).status_code == 429
    refused = second.get("/api/overview", headers={"authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 429
    assert refused.text.startswith("Too many failed sign-ins from this address: try again in")
    assert 50 < int(refused.headers["retry-after"]) <= 60
    # Each further failure, once the wait is over, doubles the wait.
    rq.redis.delete(lockout)
    again = sign_in(first, "guess")
    assert (again.status_code, again.headers["retry-after"]) == (429, "4")
    # Once the wait is over, the right token works and the count starts afresh.
    rq.redis.delete(lockout)
    assert sign_in(first).status_code == 303
    assert not rq.redis.exists(rq.keys.web_failures("testclient"))


def test_wrong_basic_passwords_are_slowed_down_too(redis_url: str, rq: Resque) -> None:
    app = create_app(redis_url, namespace=rq.namespace, basic_auth="admin:pw")
    with TestClient(app, LOCAL) as client:
        wrong = {"authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}
        right = {"authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
        assert client.get("/", headers=right).status_code == 200
        for _ in range(FREE_FAILURES):
            assert client.get("/", headers=wrong).status_code == 401
        assert client.get("/", headers=wrong).status_code == 429
        rq.redis.expire(rq.keys.web_lockout("testclient"), 60)  # not over on a slow machine
        assert client.get("/", headers=right).status_code == 429
        assert client.get("/static/app.css").status_code == 200  # no credentials, no count
