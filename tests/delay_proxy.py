"""A TCP proxy in front of Redis that can make some connections slow (tests/test_late_beat.py).

Once ``arm``ed, a connection whose request holds every one of the ``marker`` byte strings
becomes slow: that request and every later one on it reach Redis ``delay`` seconds after
the proxy received them, in order, as over a path that went slow (a lost segment, a
congested link). Other connections, and every reply, pass at once. A request already
received is delivered even once its client has closed the connection, as the network
delivers what was sent before a FIN: a client that gave up on a call cannot take it back.
"""

from __future__ import annotations

import queue
import socket
import threading
import time

#: A chunk to send to Redis at a time (``time.monotonic()``); None: the client closed.
_Chunk = tuple[float, bytes] | None


class DelayProxy:
    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.marker: tuple[bytes, ...] = ()
        self.held = threading.Event()  # a request was delayed
        self._lock = threading.Lock()
        self._pending = 0  # requests received and not yet sent to Redis
        self._open = 0  # connections whose requests are not all delivered yet
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, *marker: bytes) -> None:
        self.marker = marker

    def disarm(self) -> None:
        """Requests from now on pass at once (behind those still held on their connection)."""
        self.marker = ()

    def drained(self) -> bool:
        """Whether every request received was delivered and its connection closed."""
        with self._lock:
            return self._pending == 0 and self._open == 0

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            chunks: queue.Queue[_Chunk] = queue.Queue()
            with self._lock:
                self._open += 1
            threading.Thread(target=self._receive, args=(client, chunks), daemon=True).start()
            threading.Thread(target=self._deliver, args=(chunks, upstream), daemon=True).start()
            threading.Thread(target=self._reply, args=(upstream, client), daemon=True).start()

    def _receive(self, client: socket.socket, chunks: queue.Queue[_Chunk]) -> None:
        slow = False
        try:
            while data := client.recv(65536):
                marker = self.marker
                slow = slow or (bool(marker) and all(m in data for m in marker))
                if slow and marker:
                    self.held.set()
                with self._lock:
                    self._pending += 1
                chunks.put((time.monotonic() + (self.delay if slow and marker else 0), data))
        except OSError:
            pass
        chunks.put(None)

    def _deliver(self, chunks: queue.Queue[_Chunk], upstream: socket.socket) -> None:
        while (chunk := chunks.get()) is not None:
            due, data = chunk
            # The network's delay, not a test's synchronisation.
            time.sleep(max(due - time.monotonic(), 0))
            try:
                upstream.sendall(data)
            except OSError:
                pass
            with self._lock:
                self._pending -= 1
        try:
            upstream.shutdown(socket.SHUT_WR)  # Redis runs what it got, then closes
        except OSError:
            pass
        with self._lock:
            self._open -= 1

    def _reply(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                try:
                    client.sendall(data)
                except OSError:
                    pass  # the client is gone: Redis still runs what it was sent
        except OSError:
            pass
        for sock in (upstream, client):
            try:
                sock.close()
            except OSError:
                pass
