"""FastAPI and Starlette (contrib/starlette.py, contrib/fastapi.py), with the example
app of docs/integrations.md (examples/fastapi_app.py): a request enqueues through
the lifespan's AsyncResque, a real worker runs the job, and the mounted dashboard
keeps its auth, Host check and CSRF defences."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from e2e_support import Procs, wait_for
from pyresque import Resque
from pyresque.contrib.starlette import get_resque, lifespan
from pyresque.dev.server import find_free_port
from pyresque.dev.testing import run_jobs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py once, as the docs tell users to run it."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def client(redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ADMIN_SECRET", "let-me-in")
    app = load_example("fastapi_app").create_app(redis_url, namespace)
    with TestClient(app, "http://localhost") as client:  # runs the lifespan
        yield client


def test_a_request_enqueues_and_a_real_worker_runs_the_job(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    job_id = client.post("/signup", params={"email": "ada@example.com"}).json()["job"]
    assert client.get(f"/jobs/{job_id}").json() == {"status": "WAITING", "result": None}
    assert run_jobs(Resque(redis_url, namespace), "mail", mode="fork").processed == 1
    assert client.get(f"/jobs/{job_id}").json() == {
        "status": "COMPLETE",
        "result": "Welcome, ada@example.com!",
    }


def test_the_docs_commands_serve_the_app_and_run_its_jobs(
    procs: Procs, redis_url: str, namespace: str
) -> None:
    """docs/integrations.md's "Run it": ``uvicorn examples.fastapi_app:app`` serves real
    HTTP requests, ``pyresque worker --app examples/fastapi_app.py`` runs their jobs."""
    env = {"REDIS_URL": redis_url, "PREFIX": namespace, "ADMIN_SECRET": "let-me-in"}
    port = find_free_port()
    argv = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)]
    web = procs.command(argv, namespace, env)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: "Uvicorn running" in web.log() or not web.running(), 60, "uvicorn")
    assert web.running(), web.log()
    job_id = http_json(f"{base}/signup?email=ada@example.com", method="POST")["job"]
    worker = procs.cli(["worker", "--app", "examples/fastapi_app.py", "--interval", "0"],
                       namespace, {**env, "QUEUE": "mail"})  # fmt: skip
    assert worker.wait_exit(60) == 0, worker.log()
    assert http_json(f"{base}/jobs/{job_id}") == {
        "status": "COMPLETE",
        "result": "Welcome, ada@example.com!",
    }
    request = urllib.request.Request(f"{base}/resque/", headers={"Cookie": "admin=let-me-in"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert "mail" in reply.read().decode()


def http_json(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as reply:
        return json.loads(reply.read())


def test_the_mounted_dashboard_keeps_its_defences(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    Resque(redis_url, namespace).enqueue("mail", "Welcome", "<script>x</script>")
    assert client.get("/resque/", follow_redirects=False).status_code in (401, 403)
    client.cookies.set("admin", "let-me-in")
    page = client.get("/resque/queues/mail")
    assert page.status_code == 200
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert "<script>x</script>" not in page.text
    # Another Host (DNS rebinding) is refused even with the admin's cookie.
    assert client.get("/resque/", headers={"Host": "evil.example"}).status_code == 400
    # An action without the CSRF token changes nothing.
    refused = client.post("/resque/actions/remove-queue", data={"queue": "mail"})
    assert refused.status_code == 403
    assert Resque(redis_url, namespace).size("mail") == 1


def test_starlette_app_without_the_lifespan_gets_a_clear_error(redis_url: str) -> None:
    async def handler(request: Request) -> JSONResponse:
        return JSONResponse({"namespace": get_resque(request).namespace})

    app = Starlette(routes=[Route("/", handler)], lifespan=lifespan(redis_url, "ns1"))
    with TestClient(app) as client:
        assert client.get("/").json() == {"namespace": "ns1"}
    bare = Starlette(routes=[Route("/", handler)])
    with (
        TestClient(bare, raise_server_exceptions=True) as client,
        pytest.raises(RuntimeError, match="no AsyncResque in the app's state"),
    ):
        client.get("/")
