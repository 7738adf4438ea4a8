"""A Redis Cluster of real processes for tests and benchmarks: ``masters`` masters with
``replicas`` replicas each, all children of this process on loopback, joined by
``redis-cli --cluster create``, with a short ``cluster-node-timeout`` so that a
replica takes over a killed master within seconds.

Usage::

    with ClusterGroup(masters=3, replicas=1) as cluster:
        resque = Resque(cluster.url())
        node = cluster.master_of_slot(slot)
        cluster.kill(node)                  # SIGKILL
        cluster.wait_failover(node)         # its replica now serves its slots
        cluster.move_slots(source, target, count)   # redis-cli --cluster reshard
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from pyresque.dev.launch import HOST, Managed, find_free_port
from pyresque.dev.sentinel_group import ask, text
from pyresque.dev.server import RedisServer, ServerError

#: Redis Cluster's bus listens on the data port + 10000.
BUS_OFFSET = 10000
SLOTS = 16384


_Self = TypeVar("_Self", bound="ClusterGroup")


class ClusterNode(RedisServer):
    """A ``RedisServer`` with cluster mode on; its port is chosen so that the cluster
    bus port (port + 10000) is free too."""

    def __init__(self, node_timeout_ms: int) -> None:
        super().__init__(port=_port_pair())
        self.node_timeout_ms = node_timeout_ms

    def _command(self) -> list[str]:
        assert self.directory is not None
        return [
            *super()._command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.directory / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # A replica takes over however long it was cut off (a test kills at will).
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


class ClusterGroup(Managed):
    """``masters`` masters (3 at least: Redis Cluster's minimum for failover votes) with
    ``replicas`` replicas each."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2000) -> None:
        self._masters = masters
        self._replicas = replicas
        self._node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []

    def start(self: _Self) -> _Self:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ServerError("redis-cli is needed to create a cluster (Debian's redis-tools)")
        try:
            for _ in range(self._masters * (1 + self._replicas)):
                self.nodes.append(ClusterNode(self._node_timeout_ms))
                self.nodes[-1].start()
            create = [cli, "--cluster", "create", *(n.address for n in self.nodes)]
            create += ["--cluster-replicas", str(self._replicas), "--cluster-yes"]
            _run(create)
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    # --- where things are -------------------------------------------------------

    def url(self, scheme: str = "redis+cluster") -> str:
        """The cluster's ``redis+cluster://`` URL, naming every node."""
        return f"{scheme}://{','.join(n.address for n in self.nodes)}/"

    def masters(self) -> list[ClusterNode]:
        """The running nodes that serve slots, as a running node sees them."""
        owners = {address for address, _ in self._slot_ranges()}
        return [n for n in self.nodes if n.running and n.address in owners]

    def master_of_slot(self, slot: int) -> ClusterNode:
        for address, (first, last) in self._slot_ranges():
            if first <= slot <= last:
                return self._node(address)
        raise ServerError(f"no node serves slot {slot}")

    def slots_of(self, node: ClusterNode) -> list[tuple[int, int]]:
        """The slot ranges ``node`` serves."""
        return [span for address, span in self._slot_ranges() if address == node.address]

    def _slot_ranges(self) -> list[tuple[str, tuple[int, int]]]:
        reply = self._ask_any(lambda c: _cluster(c, "SLOTS"))
        return [(f"{text(r[2][0])}:{int(r[2][1])}", (int(r[0]), int(r[1]))) for r in reply]

    def _node(self, address: str) -> ClusterNode:
        for node in self.nodes:
            if node.address == address:
                return node
        raise ServerError(f"no node of the group listens on {address}")

    def _ask_any(self, call: Callable[[redis.Redis], Any]) -> Any:
        for node in self.nodes:
            if node.running:
                try:
                    return ask(node.port, call)
                except redis.RedisError:
                    continue
        raise ServerError("no node of the cluster answered")

    # --- state ------------------------------------------------------------------

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Wait until every running node says ``cluster_state:ok`` and agrees on who
        serves all 16384 slots."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._all_ok():
                return
            time.sleep(0.1)
        raise ServerError(f"the cluster was not ok within {timeout:g} s:\n{self.log_tails()}")

    def _all_ok(self) -> bool:
        views = set()
        for node in self.nodes:
            if not node.running:
                continue
            try:
                info = ask(node.port, lambda c: _cluster(c, "INFO"))
                slots = ask(node.port, lambda c: _cluster(c, "SLOTS"))
            except redis.RedisError:
                return False
            state = text(info)
            if "cluster_state:ok" not in state or "cluster_slots_ok:16384" not in state:
                return False
            views.add(tuple(sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in slots)))
        return len(views) == 1

    # --- failures and moves -----------------------------------------------------

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node``."""
        node.kill()

    def wait_failover(self, old: ClusterNode, timeout: float = 60.0) -> None:
        """Wait until the slots ``old`` served are served by a running node and the
        cluster is ok again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                owners = {address for address, _ in self._slot_ranges()}
            except ServerError:
                owners = set()
            if owners and old.address not in owners and self._all_ok():
                return
            time.sleep(0.1)
        raise ServerError(f"no failover from {old.address} within {timeout:g} s")

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again (it rejoins as a replica) and wait until ok."""
        node.start()
        self.wait_ok()

    def move_slots(self, source: ClusterNode, target: ClusterNode, count: int) -> None:
        """Move ``count`` slots from ``source`` to ``target`` with ``redis-cli --cluster
        reshard``: keys move by MIGRATE while clients may get MOVED and ASK."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        _run([
            cli, "--cluster", "reshard", target.address,
            "--cluster-from", _node_id(source), "--cluster-to", _node_id(target),
            "--cluster-slots", str(count), "--cluster-yes",
            "--cluster-pipeline", "10",
        ])  # fmt: skip
        self.wait_ok()

    def move_slot(
        self, slot: int, target: ClusterNode, batch: int = 10, pause: float = 0.05
    ) -> None:
        """Move one slot to ``target`` by hand (CLUSTER SETSLOT and MIGRATE), ``batch``
        keys at a time with a ``pause`` between batches, so that clients get ``ASK``
        (and ``TRYAGAIN``) while it moves, then ``MOVED``."""
        source = self.master_of_slot(slot)
        source_id, target_id = _node_id(source), _node_id(target)
        ask(target.port, lambda c: _cluster(c, "SETSLOT", str(slot), "IMPORTING", source_id))
        ask(source.port, lambda c: _cluster(c, "SETSLOT", str(slot), "MIGRATING", target_id))
        while keys := ask(
            source.port, lambda c: _cluster(c, "GETKEYSINSLOT", str(slot), str(batch))
        ):
            _migrate(source, target, [text(key) for key in keys])
            time.sleep(pause)
        for node in (target, source, *self.masters()):
            ask(node.port, lambda c: _cluster(c, "SETSLOT", str(slot), "NODE", target_id))
        self.wait_ok()

    def log_tails(self) -> str:
        """The last lines of every node's log, for a failing test's message."""
        return "\n".join(f"--- node {n.port} ---\n{n.log_tail()}" for n in self.nodes)


def _migrate(source: ClusterNode, target: ClusterNode, names: list[str]) -> None:
    ask(source.port, lambda c: c.migrate(HOST, target.port, names, 0, 5000))


def _node_id(node: ClusterNode) -> str:
    return text(ask(node.port, lambda c: _cluster(c, "MYID")))


def _cluster(client: redis.Redis, *args: str) -> Any:
    """A ``CLUSTER`` subcommand on a plain client (redis-py leaves it untyped)."""
    return client.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise ServerError(f"{' '.join(command[:3])} failed ({done.returncode}):\n{output}")


def _port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = find_free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise ServerError("no free port pair (port and port + 10000) on loopback")
