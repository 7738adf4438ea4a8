"""Django (contrib/django/) with the example project of docs/integrations.md
(examples/django_site, SQLite): jobs enqueued on commit, run by a real
``manage.py pyresque worker``, and the dashboard behind the staff login."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import AsyncClient, Client, override_settings

from e2e_support import Procs, State, served_page
from pyresque import Resque, Status
from pyresque.cli.main import without_settings
from pyresque.dev.server import find_free_port

# Real worker and scheduler processes (Django or Flask imported in each): room for a busy machine.
pytestmark = pytest.mark.timeout(180)

SITE = Path(__file__).resolve().parents[1] / "examples" / "django_site"


class Rollback(Exception):
    pass


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Django set up once per test process on the example project, with a fresh SQLite
    file (a real database, committed to, that a worker process reads too)."""
    path = tmp_path_factory.mktemp("django") / "db.sqlite3"
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    os.environ["DJANGO_DB_PATH"] = str(path)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    return path


@pytest.fixture
def site(db_path: Path, redis_url: str, namespace: str) -> Iterator[Resque]:
    """The project's settings pointed at the test's namespace; its Resque."""
    with override_settings(PYRESQUE={"REDIS_URL": redis_url, "NAMESPACE": namespace}):
        from pyresque.contrib.django import get_resque

        yield get_resque()


def site_env(db_path: Path, redis_url: str, namespace: str) -> dict[str, str]:
    """The environment of ``manage.py`` for the example project on the test's data."""
    env = {
        **without_settings(os.environ),
        "DJANGO_DB_PATH": str(db_path),
        "REDIS_URL": redis_url,
        "PYRESQUE_NAMESPACE": namespace,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py sets it
    return env


def run_worker(db_path: Path, redis_url: str, namespace: str, *args: str) -> str:
    """``python manage.py pyresque worker ...`` until the queue is drained."""
    done = subprocess.run(
        [sys.executable, "manage.py", "pyresque", "worker", "--interval", "0", *args],
        cwd=SITE, env=site_env(db_path, redis_url, namespace),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_manage_py_pyresque_scheduler_moves_due_jobs(
    site: Resque, db_path: Path, redis_url: str, namespace: str
) -> None:
    site.enqueue_in(1, "notes", "ReadNote", 1)
    assert site.delayed.count() == 1
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "pyresque", "scheduler", "--interval", "0.1"],
        cwd=SITE, env=site_env(db_path, redis_url, namespace),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while site.size("notes") == 0 and scheduler.poll() is None:
            assert time.monotonic() < deadline, "the scheduler did not move the job"
            time.sleep(0.1)
        assert scheduler.poll() is None, scheduler.communicate()[1]
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    assert (site.size("notes"), site.delayed.count()) == (1, 0)


def test_manage_py_pyresque_web_serves_the_projects_namespace(
    site: Resque, procs: Procs, db_path: Path, redis_url: str, namespace: str
) -> None:
    """The dashboard command: Redis and the namespace come from ``settings.PYRESQUE``."""
    site.enqueue("mail", "Welcome", "queued-by-the-project")
    port = find_free_port()
    argv = [sys.executable, str(SITE / "manage.py"), "pyresque", "web", "--port", str(port)]
    web = procs.command(argv, namespace, site_env(db_path, redis_url, namespace))
    page = served_page(web, f"http://127.0.0.1:{port}/queues/mail")
    assert "queued-by-the-project" in page


def test_a_rolled_back_job_never_runs_and_a_committed_one_sees_its_row(
    site: Resque, db_path: Path, redis_url: str, namespace: str
) -> None:
    from notes.jobs import ReadNote
    from notes.models import Note

    from pyresque.contrib.django import enqueue_to_on_commit

    def rolled_back() -> None:
        with transaction.atomic():
            note = Note.objects.create(text="rolled back")
            enqueue_to_on_commit("notes", ReadNote, note.pk)
            raise Rollback

    with pytest.raises(Rollback):
        rolled_back()
    assert not Note.objects.filter(text="rolled back").exists()
    assert site.size("notes") == 0
    with transaction.atomic():
        note = Note.objects.create(text="committed")
        enqueue_to_on_commit("notes", ReadNote, note.pk, track_status=True)
        assert site.size("notes") == 0  # not before the commit
    assert site.size("notes") == 1
    job_id = site.peek("notes")[0]["id"]
    run_worker(db_path, redis_url, namespace, "--queue", "notes")  # fork mode, a child per job
    packet = site.job_status(job_id)
    assert packet is not None
    assert (packet.status, packet.result) == (Status.COMPLETE, "committed")
    assert site.stat("processed") == 1
    assert site.failures.count() == 0


def test_the_example_view_enqueues_after_its_transaction(
    site: Resque, db_path: Path, redis_url: str, namespace: str
) -> None:
    note = Client().post("/notes/", {"text": "from a request"}).json()["note"]
    (payload,) = site.peek("notes")
    assert payload["args"] == [note]
    run_worker(db_path, redis_url, namespace, "--queue", "notes", "--mode", "inline")
    packet = site.job_status(payload["id"])
    assert packet is not None
    assert packet.result == "from a request"


def test_bad_input_is_refused_in_the_request_not_after_the_commit(site: Resque) -> None:
    from pyresque.contrib.django import enqueue_on_commit

    with pytest.raises(ValueError, match="glob pattern"), transaction.atomic():
        enqueue_on_commit("notes*", "ReadNote", 1)
    with pytest.raises(TypeError, match="not a JSON number"), transaction.atomic():
        enqueue_on_commit("notes", "ReadNote", float("nan"))
    assert site.queues() == []


def staff_client(name: str, staff: bool) -> Client:
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_is_for_staff_only(site: Resque) -> None:
    site.enqueue("mail", "Welcome", "<script>x</script>")
    anonymous = Client().get("/admin/resque/queues/mail")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/?next=/admin/resque/queues/mail")
    assert staff_client("visitor", staff=False).get("/admin/resque/").status_code == 302
    page = staff_client("admin", staff=True).get("/admin/resque/queues/mail")
    assert page.status_code == 200
    text = page.content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in text
    assert "<script>x</script>" not in text
    assert 'href="/admin/resque/' in text  # links stay under the mount
    site.enqueue("mail-ü", "Welcome", "unicode")  # a path that is not ASCII reaches it intact
    unicode = staff_client("admin", staff=True).get("/admin/resque/queues/mail-%C3%BC")
    assert unicode.status_code == 200
    assert "unicode" in unicode.content.decode()


def test_the_dashboard_works_under_djangos_asgi_handler(site: Resque) -> None:
    from django.contrib.auth.models import User

    site.enqueue("mail", "Welcome", "served by ASGI")
    user, _ = User.objects.get_or_create(username="admin", defaults={"is_staff": True})

    async def get(path: str, login: bool) -> Any:
        client = AsyncClient()
        if login:
            await client.aforce_login(user)
        return await client.get(path)

    assert asyncio.run(get("/admin/resque/queues/mail", login=False)).status_code == 302
    page = asyncio.run(get("/admin/resque/queues/mail", login=True))
    assert page.status_code == 200
    assert "served by ASGI" in page.content.decode()


def test_the_mounted_dashboard_keeps_its_defences(
    site: Resque, redis_url: str, namespace: str
) -> None:
    site.enqueue("mail", "Welcome", "x")
    client = staff_client("admin", staff=True)
    refused = client.post("/admin/resque/actions/remove-queue", {"queue": "mail"})
    assert refused.status_code == 403  # no CSRF token: nothing changes
    assert site.size("mail") == 1
    page = client.get("/admin/resque/queues/mail").content.decode()
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', page)
    assert token, "no CSRF token in the page"
    done = client.post(
        "/admin/resque/actions/remove-queue", {"queue": "mail", "csrf_token": token.group(1)}
    )
    assert done.status_code in (200, 303)
    assert site.size("mail") == 0
    # Django lets any host in here; the dashboard still answers only to its own.
    dashboard: dict[str, Any] = {"allowed_hosts": ["testserver"]}
    settings = {"REDIS_URL": redis_url, "NAMESPACE": namespace, "DASHBOARD": dashboard}
    with override_settings(ALLOWED_HOSTS=["*"], PYRESQUE=settings):
        assert client.get("/admin/resque/").status_code == 200
        assert client.get("/admin/resque/", HTTP_HOST="evil.example").status_code == 400


def test_the_settings_reach_the_producer(
    db_path: Path, redis_url: str, namespace: str, state: State
) -> None:
    from notes.jobs import ReadNote

    from pyresque.contrib.django import enqueue_to_on_commit, get_resque

    settings = {"REDIS_URL": redis_url, "NAMESPACE": namespace, "DIALECT": "ruby", "STRICT": True}
    with override_settings(PYRESQUE=settings):
        with transaction.atomic():
            enqueue_to_on_commit("notes", ReadNote, 7)
        with pytest.raises(LookupError, match="strict mode"):
            get_resque().enqueue_to("notes", "NoSuchJob")
    assert state.queue("notes") == [{"class": "ReadNote", "args": [7]}]


def test_bad_settings_are_one_clear_error(db_path: Path) -> None:
    from pyresque.contrib.django import config

    with (
        override_settings(PYRESQUE={"NAMESPAC": "typo"}),
        pytest.raises(ImproperlyConfigured, match=r"unknown key\(s\) 'NAMESPAC'"),
    ):
        config()
