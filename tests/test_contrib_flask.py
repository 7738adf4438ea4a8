"""Flask (contrib/flask.py) with the example app of docs/integrations.md
(examples/flask_app.py): the extension's producer, ``flask pyresque worker`` running
the app's jobs, and the dashboard behind the app's login decorator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from e2e_support import Procs, State, served_page, wait_for
from pyresque import Resque, Status
from pyresque.cli.main import without_settings
from pyresque.contrib.config import ConfigError
from pyresque.contrib.flask import Pyresque
from pyresque.dev.server import find_free_port
from test_contrib_fastapi import load_example

# Real worker and scheduler processes (Django or Flask imported in each): room for a busy machine.
pytestmark = pytest.mark.timeout(180)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app.py"


@pytest.fixture
def app(redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv("ADMIN_PASSWORD", "let-me-in")
    config = {"PYRESQUE_REDIS_URL": redis_url, "PYRESQUE_NAMESPACE": namespace}
    app: Flask = load_example("flask_app").create_app(config)
    return app


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def test_flask_pyresque_worker_runs_the_jobs_a_request_enqueued(
    client: FlaskClient, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    job_id = client.post("/signup", data={"email": "ada@example.com"}).json["job"]  # type: ignore[index]
    rq = Resque(redis_url, namespace)
    assert rq.status(job_id) == Status.WAITING
    env = {**without_settings(os.environ), **flask_env(redis_url, namespace)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", str(EXAMPLE), "pyresque", "worker",
         "--queue", "mail", "--interval", "0"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    packet = rq.job_status(job_id)
    assert packet is not None
    assert (packet.status, packet.result) == (Status.COMPLETE, "Welcome, ada@example.com!")


def flask_env(redis_url: str, namespace: str) -> dict[str, str]:
    return {"FLASK_PYRESQUE_REDIS_URL": redis_url, "FLASK_PYRESQUE_NAMESPACE": namespace}


def test_flask_pyresque_scheduler_and_web_use_the_apps_settings(
    procs: Procs, redis_url: str, namespace: str
) -> None:
    rq = Resque(redis_url, namespace)
    rq.enqueue_in(0.5, "mail", "WelcomeMail", "ada@example.com")
    flask = [sys.executable, "-m", "flask", "--app", str(EXAMPLE), "pyresque"]
    env = flask_env(redis_url, namespace)
    scheduler = procs.command([*flask, "scheduler", "--interval", "0.1"], namespace, env)
    wait_for(lambda: rq.size("mail") == 1 or not scheduler.running(), 60, "the job moved")
    assert scheduler.running(), scheduler.log()
    port = find_free_port()
    web = procs.command([*flask, "web", "--port", str(port)], namespace, env)
    assert "ada@example.com" in served_page(web, f"http://127.0.0.1:{port}/queues/mail")
    helped = subprocess.run([*flask, "--help"], capture_output=True, text=True, check=True)
    assert helped.stdout.startswith("Usage: flask pyresque [OPTIONS] COMMAND")
    assert {"worker", "scheduler", "web"} <= set(re.findall(r"^  (\S+)", helped.stdout, re.M))


def test_the_dashboard_is_behind_the_apps_login(
    client: FlaskClient, redis_url: str, namespace: str
) -> None:
    Resque(redis_url, namespace).enqueue("mail", "Welcome", "<b>x</b>")
    anonymous = client.get("/resque/queues/mail")
    assert anonymous.status_code == 302
    assert anonymous.location.startswith("/login")
    client.post("/login", data={"password": "wrong"})
    assert client.get("/resque/").status_code == 302
    client.post("/login", data={"password": "let-me-in"})
    page = client.get("/resque/queues/mail")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert 'href="/resque/' in text  # links stay under the mount
    Resque(redis_url, namespace).enqueue("mail-ü", "Welcome", "unicode")
    unicode = client.get("/resque/queues/mail-%C3%BC")  # a path that is not ASCII
    assert unicode.status_code == 200
    assert "unicode" in unicode.get_data(as_text=True)


def test_the_mounted_dashboard_keeps_its_defences(
    app: Flask, client: FlaskClient, redis_url: str, namespace: str
) -> None:
    rq = Resque(redis_url, namespace)
    rq.enqueue("mail", "Welcome", "x")
    client.post("/login", data={"password": "let-me-in"})
    # Another Host (DNS rebinding) is refused, even with the admin's session.
    session = client.get_cookie("session")
    assert session is not None
    other_host = app.test_client(use_cookies=False).get(
        "/resque/", base_url="http://evil.example", headers={"Cookie": f"session={session.value}"}
    )
    assert other_host.status_code == 400
    assert "Host" in other_host.get_data(as_text=True)
    assert client.post("/resque/actions/remove-queue", data={"queue": "mail"}).status_code == 403
    assert rq.size("mail") == 1
    page = client.get("/resque/queues/mail").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', page)
    assert token, "no CSRF token in the page"
    done = client.post(
        "/resque/actions/remove-queue", data={"queue": "mail", "csrf_token": token.group(1)}
    )
    assert done.status_code in (200, 303)
    assert rq.size("mail") == 0


def test_the_settings_reach_the_producer(redis_url: str, namespace: str, state: State) -> None:
    app = Flask(__name__)
    app.config.update(
        PYRESQUE_REDIS_URL=redis_url, PYRESQUE_NAMESPACE=namespace,
        PYRESQUE_DIALECT="ruby", PYRESQUE_STRICT=True,
    )  # fmt: skip
    extension = Pyresque(app)
    with app.app_context():
        mail = load_example("flask_app").WelcomeMail  # registered as it is imported
        extension.resque.enqueue_to("mail", mail, "ada@example.com")
        with pytest.raises(LookupError, match="strict mode"):
            extension.resque.enqueue_to("mail", "NoSuchJob")
    assert state.queue("mail") == [{"class": "WelcomeMail", "args": ["ada@example.com"]}]


def test_bad_settings_are_one_clear_error() -> None:
    app = Flask(__name__)
    app.config.update(PYRESQUE_NAMESPAC="typo")
    with pytest.raises(ConfigError, match=r"unknown key.*'NAMESPAC'"):
        Pyresque(app)
    app = Flask(__name__)
    app.config.update(PYRESQUE_DIALECT="perl")
    with pytest.raises(ConfigError, match="DIALECT must be 'php' or 'ruby'"):
        Pyresque(app)
