"""Run a real Redis-compatible server process for development, tests and demos.

The server is a child of the current process, listens on loopback only, keeps
its files in a private directory and never outlives its parent:

* :meth:`RedisServer.stop` terminates it (SIGTERM, then SIGKILL if needed);
* an ``atexit`` hook stops every server still running at interpreter exit;
* on Linux the child asks the kernel (``prctl(PR_SET_PDEATHSIG)``) to send it
  SIGTERM if the parent dies without cleaning up (SIGKILL, crash, ...).

Finding the binary and preparing the launch live in launch.py (its names are
re-exported here, where pyresque 0.1 had them).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyresque.dev.launch import (
    ENV_VAR,
    HOST,
    Managed,
    ServerError,
    ServerNotFound,
    embedded_server_binary,
    find_free_port,
    find_server_binary,
    parent_death_preexec,
    resolve_explicit_binary,
)

__all__ = [
    "ENV_VAR",
    "RedisServer",
    "ServerError",
    "ServerNotFound",
    "ServerStartError",
    "embedded_server_binary",
    "find_free_port",
    "find_server_binary",
]

_LOG_NAME = "server.log"


_Self = TypeVar("_Self", bound="RedisServer")


class ServerStartError(ServerError):
    """The server process was launched but did not become ready."""


class _PortTaken(ServerStartError):
    """The port was already in use; a fresh automatic port may be retried."""


# Servers started and not yet stop()ped (possibly killed): stopped at exit.
_running: set[RedisServer] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all_servers() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


# --------------------------------------------------------------------------- server


class RedisServer(Managed):
    """A private ``redis-server``/``valkey-server`` child process on 127.0.0.1.

    Persistence is off (``--save ''``) unless ``appendonly=True``, which enables
    the AOF with ``appendfsync always`` so data survives :meth:`restart` and even
    :meth:`kill`.  Files live in *directory*, or in a temporary directory that is
    removed by :meth:`stop`.

    Usage::

        with RedisServer() as server:
            client = redis.Redis.from_url(server.url)
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        directory: str | Path | None = None,
        binary: str | None = None,
        startup_timeout: float = 10.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._requested_port = port
        self._port = port
        self.appendonly = appendonly
        self._requested_directory = Path(directory) if directory is not None else None
        self._directory = self._requested_directory
        self._owns_directory = False
        self._requested_binary = binary
        self._binary: str | None = None
        self.startup_timeout = startup_timeout
        #: More server options (``--tls-port ...``); the plain port stays for our own checks.
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError("server has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """Pid of the running server process, or None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def directory(self) -> Path | None:
        """Working directory of the server (AOF and log live here)."""
        return self._directory

    @property
    def log_path(self) -> Path | None:
        return self._directory / _LOG_NAME if self._directory is not None else None

    @property
    def binary(self) -> str | None:
        """The server binary in use (resolved on first start)."""
        return self._binary

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<RedisServer {HOST}:{self._port} {state} binary={self._binary!r}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self: _Self) -> _Self:
        """Start the server and wait until it answers PING; no-op if running."""
        with self._lock:
            if self.running:
                return self
            if self._binary is None:
                self._binary = (
                    resolve_explicit_binary(self._requested_binary)
                    if self._requested_binary
                    else find_server_binary()
                )
            fresh_directory = self._directory is None
            self._ensure_directory()
            with _running_lock:  # from now on the atexit hook will clean up after us
                _running.add(self)
            try:
                self._launch_with_retries()
            except BaseException:
                if fresh_directory:  # a failed first start leaves nothing behind
                    self.stop()
                raise
            return self

    def stop(self) -> None:
        """Stop the server and remove its temporary directory (if we created it)."""
        with self._lock:
            self._terminate()
            if self._owns_directory and self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = self._requested_directory
                self._owns_directory = False
            self._port = self._requested_port
            with _running_lock:
                _running.discard(self)

    def restart(self) -> RedisServer:
        """Stop and start again on the same port with the same directory."""
        with self._lock:
            self._terminate()
            return self.start()

    def kill(self) -> None:
        """SIGKILL the server (simulated crash); directory and port are kept."""
        with self._lock:
            proc = self._process
            if proc is None:
                return
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            self._forget_process()

    # ------------------------------------------------------------------ internals

    def _ensure_directory(self) -> None:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="pyresque-redis-"))
            self._owns_directory = True
        else:
            self._directory.mkdir(parents=True, exist_ok=True)

    def _launch_with_retries(self) -> None:
        # An automatically chosen port can be grabbed by someone else between
        # find_free_port() and the server's bind(): pick another one then.
        attempts = 5 if self._port is None else 1
        for attempt in range(attempts):
            if self._port is None or attempt > 0:
                self._port = find_free_port()
            try:
                self._launch()
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise
            else:
                return

    def _command(self) -> list[str]:
        assert self._binary is not None
        assert self._directory is not None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not self.appendonly:
            persistence = ["--appendonly", "no"]
        return [
            self._binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--daemonize", "no",
            "--save", "",
            *persistence,
            "--dir", str(self._directory),
            "--logfile", str(self._directory / _LOG_NAME),
            *self.extra_args,
        ]  # fmt: skip

    def _launch(self) -> None:
        assert self._directory is not None
        # Early errors (bad config) go to stderr before the logfile is opened, so
        # stdout/stderr are appended to the same log file.
        with open(self._directory / _LOG_NAME, "ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                start_new_session=True,  # terminal Ctrl-C goes to us, not to the server
                preexec_fn=parent_death_preexec(),  # noqa: PLW1509
            )
        try:
            self._wait_ready()
        except BaseException:
            self._terminate()
            raise

    def _probe(self, single_connection_client: bool = False) -> redis.Redis:
        """A client for our own checks of the server: short timeouts, no retries."""
        return redis.Redis(
            host=HOST,
            port=self.port,
            socket_connect_timeout=0.5,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 0),
            single_connection_client=single_connection_client,
        )

    def _wait_ready(self) -> None:
        proc = self._process
        assert proc is not None
        client = self._probe()
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.002
        try:
            while True:
                if proc.poll() is not None:
                    error = _PortTaken if "already in use" in self.log_tail() else None
                    raise (error or ServerStartError)(
                        self._failure(f"exited with status {proc.returncode}")
                    )
                try:
                    client.ping()
                    server_pid = int(client.info("server")["process_id"])
                except redis.ConnectionError:
                    pass  # not listening yet, or still loading the AOF
                else:
                    if server_pid == proc.pid:
                        return
                    raise _PortTaken(
                        self._failure(f"port {self.port} is already used by pid {server_pid}")
                    )
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        self._failure(f"did not answer PING within {self.startup_timeout:g}s")
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            client.close()

    def _failure(self, reason: str) -> str:
        return (
            f"Redis server {self._binary} on {HOST}:{self._port} {reason}.\n"
            f"--- server log (last lines) ---\n{self.log_tail() or '(empty)'}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last *lines* lines of the server log (empty before the first start)."""
        path = self.log_path
        if path is None:
            return ""
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _terminate(self, timeout: float = 10.0) -> None:
        """Stop the process: SHUTDOWN NOSAVE (or SIGTERM), then SIGKILL after *timeout*.

        Both paths let the server exit cleanly and flush/fsync the AOF.
        """
        proc = self._process
        if proc is None:
            return
        if proc.poll() is None:
            if not self._shutdown_command(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._forget_process()

    def _shutdown_command(self, pid: int) -> bool:
        """Send SHUTDOWN NOSAVE if the server on our port is really *pid*.

        Immediate, unlike SIGTERM which Redis only acts on at its next cron tick
        (~100 ms).  The pid is checked on the same connection first, so a different
        server that happens to own the port is never shut down.
        """
        client: redis.Redis | None = None
        try:
            # A single-connection client connects (and says HELLO) as it is made: inside
            # the try, so an answer that is not Redis's (a TLS-only port) means SIGTERM.
            client = self._probe(single_connection_client=True)
            if int(client.info("server")["process_id"]) != pid:
                return False
            client.shutdown(nosave=True)  # returns once the server closed the connection
        except redis.RedisError:  # not reachable, or SHUTDOWN refused: use SIGTERM
            return False
        finally:
            if client is not None:
                client.close()
        return True

    def _forget_process(self) -> None:
        self._process = None
