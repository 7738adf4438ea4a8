"""Real Ruby Resque, resque-scheduler, resque-web and php-resque processes beside pyresque.

The peers' unmodified sources are found in ``PYRESQUE_PEERS`` (default: a
``shared/peers`` folder beside the checkout, as in the project's workspace; see its
README). Tests that need a peer are skipped, with the reason, when ``ruby``/``php`` or
the sources are missing. Peer jobs (interop_jobs.rb, interop_jobs.php) record what they
did on ``<ns>:e2e:log`` in the format of tests/e2e_jobs.py, so ``State.events`` reads
both. Every peer process is stopped by its pid: QUIT, then KILL of its process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from e2e_support import TESTS, Proc, spawn, wait_for


def _peers_dir() -> Path | None:
    candidates = [os.environ.get("PYRESQUE_PEERS", "")]
    candidates += [str(p / "shared" / "peers") for p in TESTS.parents]
    # The project's workspace, for a checkout cloned elsewhere (CI clones to a temp dir).
    candidates.append("/work/shared/peers")
    for candidate in candidates:
        if candidate and (Path(candidate) / "upstream" / "resque").is_dir():
            return Path(candidate)
    return None


PEERS = _peers_dir()
RUBY_JOBS = TESTS / "interop_jobs.rb"
PHP_JOBS = TESTS / "interop_jobs.php"


def _missing(tool: str) -> str:
    if shutil.which(tool) is None:
        return f"`{tool}` is not installed (.ci/run installs it with the peers' Debian packages)"
    if PEERS is None:
        return "the Resque peers' sources are missing (set PYRESQUE_PEERS to their folder)"
    return ""


needs_ruby = pytest.mark.skipif(bool(_missing("ruby")), reason=_missing("ruby") or "-")
needs_php = pytest.mark.skipif(bool(_missing("php")), reason=_missing("php") or "-")


class Peers:
    """Starts peer processes on one Redis namespace and stops them all afterwards."""

    def __init__(self, redis_url: str, namespace: str, tmp_path: Path) -> None:
        parts = urlsplit(redis_url)
        self.redis_url = redis_url
        self.host_port = f"{parts.hostname}:{parts.port or 6379}"
        self.db = (parts.path or "/0").strip("/") or "0"
        self.ns = namespace
        self.tmp = tmp_path
        self.started: list[Proc] = []

    # --- environment --------------------------------------------------------------

    def _ruby_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, RESQUE_REDIS_URL=self.redis_url, RESQUE_NAMESPACE=self.ns)
        env.update(RESQUE_JOBS=str(RUBY_JOBS), **extra)
        return env

    def _php_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, REDIS_BACKEND=self.host_port, REDIS_BACKEND_DB=self.db)
        env.update(PREFIX=self.ns, APP_INCLUDE=str(PHP_JOBS), PEERS=str(PEERS), **extra)
        return env

    def _php(self) -> list[str]:
        assert PEERS is not None
        bootstrap = PEERS / "php" / "bootstrap.php"
        return ["php", "-d", f"auto_prepend_file={bootstrap}", "-d", _PHP_ERRORS]

    def _start(self, argv: list[str], env: dict[str, str]) -> Proc:
        log_path = self.tmp / f"peer-{len(self.started)}.log"
        proc = Proc(spawn(argv, env, log_path), log_path, argv)
        self.started.append(proc)
        return proc

    # --- long-running peers -------------------------------------------------------

    def ruby_worker(self, queue: str, **env: str) -> Proc:
        assert PEERS is not None
        argv = ["rake", "-f", str(PEERS / "ruby" / "Rakefile"), "resque:work"]
        return self._start(argv, self._ruby_env(QUEUE=queue, INTERVAL="0.2", VERBOSE="1", **env))

    def php_worker(self, queue: str, **env: str) -> Proc:
        assert PEERS is not None
        argv = [*self._php(), str(PEERS / "upstream" / "php-resque" / "bin" / "resque")]
        return self._start(argv, self._php_env(QUEUE=queue, INTERVAL="0.2", VERBOSE="1", **env))

    def ruby_scheduler(self) -> Proc:
        assert PEERS is not None
        argv = ["rake", "-f", str(PEERS / "ruby" / "Rakefile"), "resque:scheduler"]
        return self._start(argv, self._ruby_env(RESQUE_SCHEDULER_INTERVAL="0.2", VERBOSE="1"))

    def php_scheduler(self) -> Proc:
        assert PEERS is not None
        script = PEERS / "upstream" / "php-resque" / "bin" / "resque-scheduler"
        return self._start([*self._php(), str(script)], self._php_env(INTERVAL="1", VERBOSE="1"))

    def resque_web(self) -> str:
        """Start resque-web on a free port; returns its base URL once it answers."""
        assert PEERS is not None
        port = _free_port()
        app_dir = self.tmp / "resque-web"
        app_dir.mkdir(exist_ok=True)
        argv = ["ruby", str(PEERS / "upstream" / "resque" / "bin" / "resque-web")]
        argv += ["-F", "-L", "-s", "webrick", "-o", "127.0.0.1", "-p", str(port)]
        argv += ["-r", self.redis_url, "-N", self.ns, "--app-dir", str(app_dir)]
        lib = PEERS / "upstream" / "resque" / "lib"
        proc = self._start(argv, dict(os.environ, RUBYLIB=str(lib)))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url) or _died(proc), 60, f"resque-web on {url}")
        assert proc.running(), f"resque-web exited:\n{proc.log()}"
        return url

    # --- one-shot commands --------------------------------------------------------

    def ruby(self, code: str, timeout: float = 60) -> str:
        """Run Ruby code with Resque and resque-scheduler loaded on the namespace."""
        assert PEERS is not None
        up = PEERS / "upstream"
        prelude = (
            'require "resque"; require "resque-scheduler"; '
            'Resque.redis = Redis::Namespace.new(ENV["RESQUE_NAMESPACE"], '
            'redis: Redis.new(url: ENV["RESQUE_REDIS_URL"]));'
        )
        argv = [
            "ruby",
            "-I",
            str(up / "resque" / "lib"),
            "-I",
            str(up / "resque-scheduler" / "lib"),
        ]
        return _run([*argv, "-e", prelude + code], self._ruby_env(), timeout)

    def php(self, code: str, timeout: float = 60) -> str:
        """Run PHP code with php-resque loaded on the namespace (``Resque::redis()`` works)."""
        prelude = (
            'require getenv("PEERS") . "/php/bootstrap.php";'
            'Resque::setBackend(getenv("REDIS_BACKEND"), (int) getenv("REDIS_BACKEND_DB"));'
            'Resque_Redis::prefix(getenv("PREFIX"));'
        )
        return _run(["php", "-d", _PHP_ERRORS, "-r", prelude + code], self._php_env(), timeout)

    # --- stopping -----------------------------------------------------------------

    def stop(self, proc: Proc, grace: float = 10) -> None:
        """QUIT (the peers finish their job and exit), then KILL its process group."""
        if proc.popen.returncode is None:
            try:
                proc.send(signal.SIGQUIT)
                proc.popen.wait(grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if proc.popen.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait()

    def cleanup(self) -> None:
        for proc in self.started:
            self.stop(proc, grace=2)


_PHP_ERRORS = "error_reporting=E_ALL & ~E_DEPRECATED"


def peers_fixture(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    peers = Peers(redis_url, namespace, tmp_path)
    try:
        yield peers
    finally:
        peers.cleanup()


def _run(argv: list[str], env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        argv, check=False, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(f"{argv[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/overview", timeout=2):
            return True
    except OSError:
        return False


def _died(proc: Proc) -> bool:
    return not proc.running()
