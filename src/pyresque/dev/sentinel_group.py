"""A Sentinel group of real processes for tests and benchmarks: one master, its
replicas and three Sentinels, all children of this process on loopback, with
short timeouts so that a failover takes a few seconds (``down-after-milliseconds``
2000: with 1000, a Sentinel that has just learnt of a switch could flag the new
master down before its link to it was up, and fail over a second time).

Usage::

    with SentinelGroup(replicas=2) as group:
        resque = Resque(group.url())
        old = group.kill_master()          # SIGKILL
        new = group.wait_failover(old)     # the Sentinels promoted a replica
        group.restart(old)                 # back, as a replica of the new master
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyresque.dev.launch import HOST, Managed, find_server_binary
from pyresque.dev.server import RedisServer, ServerError

Address = tuple[str, int]


_Self = TypeVar("_Self", bound="SentinelGroup")


class Node(RedisServer):
    """A data node: a ``RedisServer`` that may start as a replica (``replica_of``), and
    that syncs a replica at once (no diskless-sync delay)."""

    def __init__(self, replica_of: Address | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.replica_of = replica_of

    def _command(self) -> list[str]:
        extra = ["--repl-diskless-sync-delay", "0"]
        if self.replica_of is not None:
            extra += ["--replicaof", self.replica_of[0], str(self.replica_of[1])]
        return [*super()._command(), *extra]


class SentinelProcess(RedisServer):
    """A ``redis-sentinel`` (Debian's package), or the server binary in sentinel mode,
    watching one master. Its configuration file is written at each start (Sentinel
    rewrites it as it learns the group)."""

    def __init__(
        self, service: str, master: Address, down_after_ms: int, failover_timeout_ms: int
    ) -> None:
        super().__init__()
        self.service = service
        self.master = master
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def _command(self) -> list[str]:
        assert self.directory is not None
        conf = self.directory / "sentinel.conf"
        if not conf.exists():  # a restart keeps what the Sentinel learnt
            service = self.service
            conf.write_text(
                f"port {self.port}\nbind {HOST}\ndaemonize no\ndir {self.directory}\n"
                f"logfile {self.directory / 'server.log'}\n"
                f"sentinel monitor {service} {self.master[0]} {self.master[1]} 2\n"
                f"sentinel down-after-milliseconds {service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {service} 1\n"
            )
        sentinel = shutil.which("redis-sentinel")
        if sentinel is not None:
            return [sentinel, str(conf)]
        return [find_server_binary(), str(conf), "--sentinel"]


class SentinelGroup(Managed):
    """One master, ``replicas`` replicas and ``sentinels`` Sentinels (quorum 2)."""

    def __init__(
        self,
        replicas: int = 2,
        sentinels: int = 3,
        service: str = "mymaster",
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 4000,
    ) -> None:
        self.service = service
        self._replica_count = replicas
        self._sentinel_count = sentinels
        self._down_after_ms = down_after_ms
        self._failover_timeout_ms = failover_timeout_ms
        self.nodes: list[Node] = []
        self.sentinels: list[SentinelProcess] = []

    def start(self: _Self) -> _Self:
        try:
            master = Node()
            self.nodes.append(master)
            master.start()
            address = (HOST, master.port)
            for _ in range(self._replica_count):
                self.nodes.append(Node(replica_of=address))
                self.nodes[-1].start()
            self.wait_replicas(self._replica_count)
            for _ in range(self._sentinel_count):
                self.sentinels.append(
                    SentinelProcess(
                        self.service, address, self._down_after_ms, self._failover_timeout_ms
                    )
                )
                self.sentinels[-1].start()
            self._wait_sentinels_know(self._replica_count)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in [*self.sentinels, *self.nodes]:
            process.stop()
        self.sentinels.clear()
        self.nodes.clear()

    # --- where things are -------------------------------------------------------

    def url(self, db: int = 0) -> str:
        """The group's ``redis+sentinel://`` URL."""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/{db}"

    def master_address(self) -> Address:
        """Where the Sentinels (the first that answers) say the master is."""
        for process in self.sentinels:
            if not process.running:
                continue
            try:
                host, port = ask(process.port, self._master_of)
            except redis.RedisError:
                continue
            return text(host), int(port)
        raise ServerError("no Sentinel answered")

    def _master_of(self, client: redis.Redis) -> Any:
        return client.sentinel_get_master_addr_by_name(self.service)

    def node_at(self, address: Address) -> Node:
        for node in self.nodes:
            if node.port == address[1]:
                return node
        raise ServerError(f"no node of the group listens on {address[0]}:{address[1]}")

    # --- failures ---------------------------------------------------------------

    def kill_master(self) -> Address:
        """SIGKILL the current master; returns its address."""
        address = self.master_address()
        self.node_at(address).kill()
        return address

    def wait_failover(self, old: Address, timeout: float = 60.0) -> Address:
        """Wait until every running Sentinel names a new master, other than ``old``,
        and that master answers as one; returns its address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            named = set()
            for process in self.sentinels:
                try:
                    host, port = ask(process.port, self._master_of)
                    named.add((text(host), int(port)))
                except redis.RedisError:
                    named.add(old)
            if len(named) == 1 and old not in named:
                new = named.pop()
                try:
                    if ask(new[1], lambda c: c.role()[0]) in (b"master", "master"):
                        return new
                except redis.RedisError:
                    pass
            time.sleep(0.05)
        raise ServerError(f"no failover from {old[0]}:{old[1]} within {timeout:g} s")

    def restart(self, old: Address) -> None:
        """Start the node at ``old`` again, as a replica of the current master, and wait
        until it is in sync."""
        node = self.node_at(old)
        node.replica_of = self.master_address()
        node.start()
        self.wait_replicas(len(self.nodes) - 1)

    def wait_replicas(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the master has ``count`` replicas online."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            master = self.nodes[0] if not self.sentinels else self.node_at(self.master_address())
            try:
                info = ask(master.port, lambda c: c.info("replication"))
            except redis.RedisError:
                info = {}
            online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if sum(1 for v in online if v.get("state") == "online") >= count:
                return
            time.sleep(0.05)
        raise ServerError(f"the master did not get {count} replica(s) online in {timeout:g} s")

    def _wait_sentinels_know(self, replicas: int, timeout: float = 60.0) -> None:
        """Wait until each Sentinel knows the replicas and the other Sentinels (a
        failover needs both)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = 0
            for process in self.sentinels:
                try:
                    state = ask(process.port, lambda c: c.sentinel_master(self.service))
                except redis.RedisError:
                    continue
                known = int(state.get("num-slaves", 0)), int(state.get("num-other-sentinels", 0))
                if known[0] >= replicas and known[1] >= len(self.sentinels) - 1:
                    ready += 1
            if ready == len(self.sentinels):
                return
            time.sleep(0.1)
        raise ServerError(f"the Sentinels did not discover each other within {timeout:g} s")

    def log_tails(self) -> str:
        """The last lines of every process's log, for a failing test's message."""
        return "\n".join(
            f"--- {type(p).__name__} {p.port} ---\n{p.log_tail()}"
            for p in [*self.nodes, *self.sentinels]
            if p.log_path is not None and Path(p.log_path).exists()
        )


def ask(port: int, call: Callable[[redis.Redis], Any]) -> Any:
    """``call`` on a client of its own to the process on ``port`` (one that may be dead)."""
    client = redis.Redis(
        host=HOST,
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return call(client)
    finally:
        client.close()


def text(value: bytes | str) -> str:
    """A reply as text."""
    return value.decode() if isinstance(value, bytes) else value
