"""The dashboard against the web's usual attacks: DNS rebinding (the Host header check),
a mounted app without an auth decision, sessions that never end, and password guessing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

from pyresque import Resque
from pyresque.web import OPEN, WebConfigError, create_app
from pyresque.web_auth import LOCAL_HOSTS, allowed_hosts
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
