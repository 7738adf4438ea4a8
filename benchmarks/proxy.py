#!/usr/bin/env python
"""A TCP proxy that adds a fixed delay in each direction (default 0.5 ms: 1 ms RTT).

Like ``netem delay``: every chunk read from one side is written to the other no
earlier than ``delay`` after it arrived, in order; throughput is not limited.

Threads, not asyncio: an asyncio loop sleeps in whole milliseconds (epoll's
timeout unit), so a 0.5 ms delay would become 1 ms or more. Here each
direction of each connection has a reader thread and a writer thread that
sleeps until each chunk is due. A thread wakes up late (by 0.1-0.3 ms on a
busy VM), so writers learn how late they wake and go to sleep that much
earlier: the delay holds on average, and the proxy's own overhead is inside it.

It also counts what crosses it: ``requests`` is the number of client-to-server
chunks, about one per round trip a sequential client makes (a pipeline is one
or a few).

Protocol: prints ``PORT <n>`` once listening; each ``snap`` line on stdin makes it
print a JSON line of its counters; end of stdin stops it.

    python benchmarks/proxy.py --target 127.0.0.1:6390 --delay-ms 0.5
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import socket
import sys
import threading
import time


class Lateness:
    """How late a sleeping thread wakes up, learned as we go (shared by all writers)."""

    def __init__(self, limit: float) -> None:
        self.estimate = 0.0
        self.limit = limit

    def sleep_until(self, due: float) -> None:
        wait = due - time.monotonic() - self.estimate
        if wait > 0:
            time.sleep(wait)
            error = time.monotonic() - due  # > 0: still late; < 0: early
            self.estimate = min(self.limit, max(0.0, self.estimate + 0.1 * error))


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.bytes_up = 0
        self.replies = 0

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {
                "connections": self.connections,
                "requests": self.requests,
                "bytes_up": self.bytes_up,
                "replies": self.replies,
            }


class Direction:
    """One direction of one connection: read chunks, deliver each ``delay`` later."""

    def __init__(
        self,
        source: socket.socket,
        sink: socket.socket,
        delay: float,
        counters: Counters,
        upstream: bool,
        lateness: Lateness,
    ) -> None:
        self.source, self.sink, self.delay = source, sink, delay
        self.lateness = lateness
        self.counters, self.upstream = counters, upstream
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()
        self.closed = False

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(262144)
            except OSError:
                data = b""
            now = time.monotonic()
            if data:
                with self.counters.lock:
                    if self.upstream:
                        self.counters.requests += 1
                        self.counters.bytes_up += len(data)
                    else:
                        self.counters.replies += 1
            with self.ready:
                self.queue.append((now + self.delay, data))
                self.ready.notify()
            if not data:
                return

    def _write(self) -> None:
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
                due, data = self.queue.popleft()
            if not data:
                with contextlib.suppress(OSError):
                    self.sink.shutdown(socket.SHUT_WR)
                return
            self.lateness.sleep_until(due)
            try:
                self.sink.sendall(data)
            except OSError:
                with contextlib.suppress(OSError):
                    self.source.shutdown(socket.SHUT_RD)
                return


def serve(listener: socket.socket, target: tuple[str, int], delay: float, c: Counters) -> None:
    lateness = Lateness(limit=delay * 0.8)
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(target)
        except OSError:
            client.close()
            continue
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c.lock:
            c.connections += 1
        Direction(client, server, delay, c, True, lateness).start()
        Direction(server, client, delay, c, False, lateness).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the Redis server")
    parser.add_argument("--delay-ms", type=float, default=0.5, help="delay each way (ms)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    counters = Counters()
    threading.Thread(
        target=serve,
        args=(listener, (host, int(port)), args.delay_ms / 1000, counters),
        daemon=True,
    ).start()
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "snap":
            print(json.dumps(counters.snapshot()), flush=True)


if __name__ == "__main__":
    main()
