"""Dashboard security: CSRF on every action, read-only mode, token and basic auth,
safe redirects, headers, URL prefixes, and refusing to listen publicly without auth."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from pyresque import Resque
from pyresque.exceptions import WebConfigError
from pyresque.web.app import ACTIONS, OPEN, create_app
from pyresque.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Settings,
    check_bind,
    parse_basic_auth,
)
from pyresque.web.serve import preflight, serve
from test_web_support import LOCAL, rq

__all__ = ["rq"]

TOKEN = "s3cret-token"


def csrf(client: TestClient, path: str = "/") -> str:
    """The CSRF token of a rendered page (this also sets the CSRF cookie)."""
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', client.get(path).text)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def app_client(redis_url: str, rq: Resque) -> Iterator[TestClient]:
    rq.enqueue("mail", "SendMail", {"to": "a@example.com"})
    rq.redis.rpush(rq.keys.failed, b"null")
    with TestClient(create_app(redis_url, namespace=rq.namespace, auth=OPEN), LOCAL) as client:
        yield client


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_refuses_a_post_without_the_csrf_token(
    app_client: TestClient, rq: Resque, action: str
) -> None:
    fields = {"queue": "mail", "index": "0", "job_id": "x", "digest": "x"}
    csrf(app_client, "/failed")  # the browser has the cookie, but the form lacks the token
    for path in (f"/actions/{action}", f"/api/actions/{action}"):
        response = app_client.post(path, data=fields, follow_redirects=False)
        assert response.status_code == 403, path
        assert "CSRF" in response.text
    wrong = app_client.post(f"/actions/{action}", data={**fields, "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert (rq.size("mail"), rq.failures.count()) == (1, 1)


def test_the_token_is_bound_to_the_cookie(app_client: TestClient, rq: Resque) -> None:
    token = csrf(app_client)
    app_client.cookies.clear()  # a token copied into another browser is worthless
    response = app_client.post("/actions/clear-failed", data={"csrf_token": token})
    assert response.status_code == 403
    assert rq.failures.count() == 1
    token = csrf(app_client)
    ok = app_client.post(
        "/actions/clear-failed",
        data={"csrf_token": token, "next": "/failed"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/failed?done=clear-failed&n=1"
    assert rq.failures.count() == 0
    cookie = next(c for c in app_client.cookies.jar if c.name == CSRF_COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly")


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_redirects_stay_on_the_dashboard(app_client: TestClient, target: str) -> None:
    token = csrf(app_client)
    response = app_client.post(
        "/actions/clear-retried",
        data={"csrf_token": token, "next": target},
        follow_redirects=False,
    )
    assert response.headers["location"].startswith("/?done=clear-retried")


def test_security_headers(app_client: TestClient) -> None:
    headers = app_client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert app_client.get("/static/app.js").status_code == 200


def test_read_only_hides_and_refuses_mutations(redis_url: str, rq: Resque) -> None:
    rq.enqueue("mail", "SendMail", {"to": "a@example.com"})
    rq.redis.rpush(rq.keys.failed, b"null")
    with TestClient(create_app(redis_url, namespace=rq.namespace, read_only=True), LOCAL) as client:
        for path in ("/", "/queues/mail", "/failed", "/workers"):
            page = client.get(path).text
            assert 'method="post"' not in page, path
        assert "read-only" in client.get("/").text
        token = client.get("/api/csrf").json()["csrf_token"]
        response = client.post("/actions/clear-failed", data={"csrf_token": token})
        assert response.status_code == 403
        assert "read-only" in response.text
        assert client.get("/api").json()["actions"] == []
    assert rq.failures.count() == 1


def test_token_auth(redis_url: str, rq: Resque) -> None:
    rq.redis.rpush(rq.keys.failed, b"null")
    app = create_app(redis_url, namespace=rq.namespace, auth_token=TOKEN)
    with TestClient(app, LOCAL) as client:
        for path in ("/api/overview", "/metrics", "/api/csrf"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
        page = client.get("/failed?queue=x", headers={"accept": "text/html"})
        assert page.status_code == 401
        assert "Sign in" in page.text
        assert 'name="next" value="/failed?queue=x"' in page.text
        assert client.get("/static/app.css").status_code == 200  # styles the login page

        bearer = {"authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/overview", headers=bearer).status_code == 200
        assert client.get("/metrics", headers=bearer).status_code == 200
        bad = {"authorization": "Bearer wrong"}
        assert client.get("/api/overview", headers=bad).status_code == 401
        # A script with the bearer token needs no CSRF token: browsers never send one.
        done = client.post("/api/actions/clear-failed", headers=bearer)
        assert done.json() == {"ok": True, "action": "clear-failed", "count": 1}

        token = csrf(client, "/login")
        wrong = client.post("/login", data={"csrf_token": token, "token": "nope", "next": "/"})
        assert wrong.status_code == 401
        assert "not right" in wrong.text
        no_csrf = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert no_csrf.status_code == 403
        login = client.post(
            "/login",
            data={"csrf_token": token, "token": TOKEN, "next": "/failed"},
            follow_redirects=False,
        )
        assert login.status_code == 303
        assert login.headers["location"].startswith("/failed")
        session = login.cookies[SESSION_COOKIE]
        assert TOKEN not in session
        assert client.get("/failed").status_code == 200
        assert "sign out" in client.get("/").text
        # A session cookie is not enough for an action: the CSRF token is still needed.
        refused = client.post("/api/actions/clear-failed")
        assert refused.status_code == 403
        out = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.delete(SESSION_COOKIE)
        assert client.get("/api/overview").status_code == 401


def test_basic_auth(redis_url: str, rq: Resque) -> None:
    app = create_app(redis_url, namespace=rq.namespace, basic_auth="admin:pa:ss")
    with TestClient(app, LOCAL) as client:
        response = client.get("/", headers={"accept": "text/html"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")

        def basic(user: str, password: str) -> dict[str, str]:
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"authorization": f"Basic {raw}"}

        assert client.get("/", headers=basic("admin", "pa:ss")).status_code == 200
        assert client.get("/", headers=basic("admin", "wrong")).status_code == 401
        assert client.get("/", headers=basic("root", "pa:ss")).status_code == 401
        assert client.get("/", headers={"authorization": "Basic !!!"}).status_code == 401
        # Browsers resend basic credentials on their own, so actions still need CSRF.
        refused = client.post("/api/actions/clear-failed", headers=basic("admin", "pa:ss"))
        assert refused.status_code == 403


def test_url_prefix_and_mounting(redis_url: str, rq: Resque) -> None:
    prefixed = create_app(redis_url, namespace=rq.namespace, prefix="/resque/", auth=OPEN)
    with TestClient(prefixed, LOCAL) as client:
        page = client.get("/resque/")
        assert page.status_code == 200
        assert 'href="/resque/static/app.css' in page.text
        assert 'href="/resque/failed"' in page.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/resque/"
        assert client.get("/resque/api/overview").status_code == 200
        token = csrf(client, "/resque/failed")
        response = client.post(
            "/resque/actions/clear-failed",
            data={"csrf_token": token, "next": "https://evil.example/"},
            follow_redirects=False,
        )
        assert response.headers["location"].startswith("/resque/?done=")

    host = Starlette(
        routes=[Mount("/jobs", create_app(redis_url, namespace=rq.namespace, auth=OPEN))]
    )
    with TestClient(host, LOCAL) as client:
        page = client.get("/jobs/workers")
        assert page.status_code == 200
        assert 'href="/jobs/static/app.css' in page.text
        assert client.get("/jobs/api/workers").json()["total"] == 0


def test_listening_beyond_loopback_needs_auth() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, Settings())
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(WebConfigError, match="without authentication"):
            check_bind(host, Settings())
        check_bind(host, Settings(auth_token="t"))
        check_bind(host, Settings(basic_auth=("u", "p")))
    with pytest.raises(WebConfigError, match="--token"):
        serve("redis://127.0.0.1:1/0", host="0.0.0.0", port=1)
    with pytest.raises(WebConfigError, match="without authentication"):
        preflight("::")
    preflight("::", basic_auth="u:p")


def test_basic_auth_syntax() -> None:
    assert parse_basic_auth("u:p:q") == ("u", "p:q")
    assert parse_basic_auth(("u", "p")) == ("u", "p")
    assert parse_basic_auth(None) is None
    for bad in ("nopassword", ":p", "u:"):
        with pytest.raises(WebConfigError, match="USER:PASSWORD"):
            parse_basic_auth(bad)


def test_redis_down_is_a_clear_error(rq: Resque) -> None:
    with TestClient(
        create_app("redis://127.0.0.1:1/0", namespace=rq.namespace, auth=OPEN), LOCAL
    ) as client:
        page = client.get("/")
        assert page.status_code == 503
        assert "Cannot reach Redis" in page.text
        assert client.get("/api/overview").status_code == 503
        assert "resque_up" in client.get("/metrics").text
