"""pyresque over TLS, against a real ``redis-server`` with a TLS port that asks every
client for a certificate (tests/secure_support.py makes them): the producer, a worker
in inline and fork mode, the scheduler, the dashboard and a CLI command; a wrong CA
or a missing client certificate is one clear line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from e2e_support import JOBS, Procs, procs_fixture, wait_for
from pyresque import AsyncResque, Job, Resque
from pyresque.cli.main import without_settings
from pyresque.dev.sentinel_group import SentinelProcess
from pyresque.dev.server import find_free_port
from pyresque.dev.testing import run_jobs
from pyresque.protocol.connection import describe
from pyresque.protocol.status import Status
from pyresque.web.app import OPEN, create_app
from secure_support import TLSServer, admin, new_namespace, tls_server

_ran: list[Any] = []


class TlsEcho(Job):
    def perform(self) -> None:
        _ran.append(self.args)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    yield from tls_server(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def procs(tls: TLSServer, tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(f"rediss://127.0.0.1:{tls.tls_port}/0", tmp_path)


def _tls_clients(tls: TLSServer) -> int:
    """Connections on the TLS port (CLIENT LIST's laddr), our admin one excluded."""
    clients = admin(tls.admin_url).client_list()
    return sum(1 for c in clients if c.get("laddr", "").endswith(f":{tls.tls_port}"))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyresque.cli", *args],
        env={**without_settings(os.environ), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_producer_and_inline_worker_over_tls(tls: TLSServer) -> None:
    rq = Resque(tls.url(), namespace=new_namespace())
    assert describe(rq.redis) == f"rediss://127.0.0.1:{tls.tls_port}/0"
    job_id = rq.enqueue("default", TlsEcho, {"n": 1}, track_status=True)
    assert rq.size("default") == 1
    _ran.clear()
    assert run_jobs(rq, "default", mode="inline").processed == 1
    assert _ran == [{"n": 1}]
    assert job_id is not None
    assert rq.status(job_id) == Status.COMPLETE

    async def enqueue_async() -> None:  # AsyncResque takes the same URL
        async with AsyncResque(tls.url(), rq.namespace) as producer:
            await producer.enqueue("default", TlsEcho, {"n": 2})

    asyncio.run(enqueue_async())
    assert rq.size("default") == 1


@pytest.mark.timeout(180)
def test_fork_worker_and_scheduler_over_tls(tls: TLSServer, procs: Procs) -> None:
    ns = new_namespace()
    rq = Resque(tls.url(), namespace=ns)
    rq.enqueue("default", "Succeed", {"now": True})
    rq.enqueue_in(0.5, "default", "Succeed", {"later": True})
    # The worker takes its TLS settings from the environment, the scheduler from options.
    files = {
        "PYRESQUE_SSL_CA_CERTS": str(tls.certs.ca),
        "PYRESQUE_SSL_CERTFILE": str(tls.certs.client_cert),
        "PYRESQUE_SSL_KEYFILE": str(tls.certs.client_key),
    }
    bookkeeping = {"E2E_REDIS_URL": tls.admin_url}  # the jobs' own log (e2e_jobs.py)
    before = _tls_clients(tls)
    procs.worker(ns, "default", "--mode", "fork", env={**files, **bookkeeping})
    scheduler = [
        "scheduler", "--app", str(JOBS), "--redis-url", procs.redis_url, "--namespace", ns,
        "--ssl-ca-certs", files["PYRESQUE_SSL_CA_CERTS"],
        "--ssl-certfile", files["PYRESQUE_SSL_CERTFILE"],
        "--ssl-keyfile", files["PYRESQUE_SSL_KEYFILE"],
    ]  # fmt: skip
    procs.cli(scheduler, ns, bookkeeping)
    plain = admin(tls.admin_url)
    wait_for(lambda: plain.get(f"{ns}:stat:processed") == b"2", 90, "both jobs ran")
    assert not plain.llen(f"{ns}:failed")
    assert _tls_clients(tls) >= before + 2  # the worker and the scheduler, over TLS


def test_dashboard_reads_over_tls(tls: TLSServer) -> None:
    ns = new_namespace()
    rq = Resque(tls.url(), namespace=ns)
    rq.enqueue("mail", TlsEcho, {"n": 2})
    app = create_app(tls.url(), namespace=ns, auth=OPEN)
    with TestClient(app, "http://localhost") as client:
        overview = client.get("/api/overview")
        assert overview.status_code == 200, overview.text
        assert overview.json()["counts"]["pending"] == 1
        page = client.get("/queues")
        assert page.status_code == 200
        assert "mail" in page.text


def test_cli_command_over_tls(tls: TLSServer) -> None:
    ns = new_namespace()
    Resque(tls.url(), namespace=ns).enqueue("default", TlsEcho, {"n": 3})
    certs = tls.certs
    done = _cli(
        "info", "--json", "--namespace", ns,
        "--redis-url", f"rediss://127.0.0.1:{tls.tls_port}/0",
        "--ssl-ca-certs", str(certs.ca),
        "--ssl-certfile", str(certs.client_cert),
        "--ssl-keyfile", str(certs.client_key),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"pending": 1' in done.stdout


@pytest.mark.parametrize("wrong", ["other CA", "no client certificate"])
def test_tls_failures_are_one_clear_line(tls: TLSServer, wrong: str) -> None:
    url = tls.url(ca=tls.certs.other_ca) if wrong == "other CA" else tls.url(client_cert=False)
    done = _cli("info", "--redis-url", url)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    where = f"rediss://127.0.0.1:{tls.tls_port}/0"
    assert done.stderr.startswith(f"pyresque: error: the TLS handshake with Redis at {where}")
    if wrong == "other CA":  # (without a client certificate, TLS 1.3 may only say EOF)
        assert "certificate verify failed" in done.stderr


#: Every command that connects, with what it needs besides where Redis is.
COMMANDS = [
    ["info"], ["workers"], ["ctl", "pause", "--all"], ["status", "0" * 32],
    ["enqueue", "q", "TlsEcho", "{}"], ["failed", "list"], ["cron", "list"],
    ["delayed", "list"], ["worker", "--queue", "q"], ["scheduler"], ["web"],
    ["cancel", "0" * 32], ["batch", "x"], ["forget-idle-queues", "--idle", "60"],
    ["failed", "ops"], ["failed", "trim", "--keep", "10"], ["delayed", "enqueue-now", "--id", "x"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_connects_the_same_way(tls: TLSServer, command: list[str]) -> None:
    """A wrong CA, given as an option, stops every command at the handshake: each one
    connects through the one path that reads the TLS settings (connection.connect)."""
    where = f"rediss://127.0.0.1:{tls.tls_port}/0"
    done = _cli(*command, "--redis-url", where, "--ssl-ca-certs", str(tls.certs.other_ca))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"pyresque: error: the TLS handshake with Redis at {where}")


class TlsSentinel(SentinelProcess):
    """One Sentinel that watches the TLS server over TLS (with the client certificate)
    and takes TLS clients on a port of its own; its plain port is the test's."""

    def __init__(self, tls: TLSServer) -> None:
        super().__init__("mymaster", ("127.0.0.1", tls.tls_port), 5000, 10000)
        self.certs = tls.certs
        self.tls_port = find_free_port()

    def _command(self) -> list[str]:
        command = super()._command()  # writes sentinel.conf
        assert self.directory is not None
        certs = self.certs
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            conf.read_text().replace(" 2\n", " 1\n")  # the quorum: one Sentinel
            + f"tls-port {self.tls_port}\ntls-cert-file {certs.server_cert}\n"
            f"tls-key-file {certs.server_key}\ntls-ca-cert-file {certs.ca}\n"
            f"tls-client-cert-file {certs.client_cert}\ntls-client-key-file {certs.client_key}\n"
            "tls-replication yes\ntls-auth-clients yes\n"
        )
        return command


def test_a_sentinel_target_over_tls_to_the_sentinels_and_the_master(tls: TLSServer) -> None:
    """``rediss+sentinel://``: the Sentinel is asked over TLS (client certificate
    included) and the master it names is reached over TLS, from the producers, a
    worker, the dashboard and a command; a wrong CA is one clear line."""
    with TlsSentinel(tls) as watcher:
        certs = tls.certs
        files = f"ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
        where = f"rediss+sentinel://127.0.0.1:{watcher.tls_port}/mymaster/0"
        url = f"{where}?ssl_ca_certs={certs.ca}&{files}"
        ns = new_namespace()
        rq = Resque(url, namespace=ns)
        rq.enqueue("default", TlsEcho, {"n": 9})
        assert describe(rq.redis) == f"{where} (master 127.0.0.1:{tls.tls_port})"
        _ran.clear()
        assert run_jobs(rq, "default", mode="inline").processed == 1
        assert _ran == [{"n": 9}]

        async def enqueue_async() -> None:
            async with AsyncResque(url, ns) as producer:
                await producer.enqueue("default", TlsEcho, {"n": 10})

        asyncio.run(enqueue_async())
        assert rq.size("default") == 1
        with TestClient(create_app(url, namespace=ns, auth=OPEN), "http://localhost") as web:
            assert web.get("/api/overview").json()["counts"]["pending"] == 1
        done = _cli("info", "--json", "--namespace", ns, "--redis-url", url)
        assert done.returncode == 0, done.stderr
        assert '"pending": 1' in done.stdout
        wrong = _cli("info", "--redis-url", url.replace(str(certs.ca), str(certs.other_ca)))
        assert wrong.returncode == 1
        assert wrong.stderr.count("\n") == 1, wrong.stderr
        rq.redis.close()
