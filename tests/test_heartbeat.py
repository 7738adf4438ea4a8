"""A beat carries the worker id once and the keys named after it only when needed
(heartbeat.lua: with thousands of queues the id is 100 kB and more): what it leaves out
must still be written when it matters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyresque import Resque
from pyresque.middleware.history import HistoryBuffer
from pyresque.protocol.connection import dedicated, lease_client
from pyresque.worker.heartbeat import CONTROL_EVERY, Heartbeat
from pyresque.worker.recovery import Recovery

#: A Resque id over many queues, as a real worker of 2,000 queues has.
WID = "host:1:" + ",".join(f"q{i:04d}" for i in range(2000))


class _Beat:
    def __init__(self, rq: Resque, *, watched: bool = False) -> None:
        self.rq = rq
        self.paused = False
        self.delivered: list[str] = []
        self.client = lease_client(rq.redis, 5.0)
        self.control = dedicated(rq.redis) if watched else None
        recovery = Recovery(self.client, rq.keys, rq.registry, 3, WID)
        self.heartbeat = Heartbeat(
            self.client,
            rq.keys,
            WID,
            5000,
            "started-at",
            recovery,
            self.delivered.append,
            HistoryBuffer(),
            paused=lambda: self.paused,
            control_client=self.control,  # its watch is never started: no wake comes
        )

    def close(self) -> None:
        self.client.close()
        if self.control is not None:
            self.control.close()


@pytest.fixture
def beat(rq: Resque) -> Iterator[_Beat]:
    b = _Beat(rq)
    yield b
    b.close()


def test_a_worker_pruned_while_alive_registers_again_with_its_started_key(
    rq: Resque, beat: _Beat
) -> None:
    r, keys = rq.redis, rq.keys
    beat.heartbeat.beat()
    assert r.sismember(keys.workers, WID)
    assert r.get(keys.worker_started(WID)) == b"started-at"
    beat.heartbeat.beat()  # registered: a beat without the started key
    # Ruby's prune_dead_workers (or a reap) unregisters it while it lives.
    r.srem(keys.workers, WID)
    r.delete(keys.worker_started(WID))
    r.hdel(keys.heartbeats, WID)
    beat.heartbeat.beat()
    assert r.sismember(keys.workers, WID)
    assert r.get(keys.worker_started(WID)) == b"started-at"
    assert r.hget(keys.heartbeats, WID)
    assert beat.heartbeat.registrations == 2  # the first beat, and this one


def test_the_paused_marker_follows_the_worker_and_expires_with_its_lease(
    rq: Resque, beat: _Beat
) -> None:
    r, marker = rq.redis, rq.keys.paused(WID)
    r.rpush(marker, "left by an earlier worker of this id, of another type")
    beat.heartbeat.beat()
    assert not r.exists(marker)  # the first beat knows nothing: it deletes the marker
    beat.paused = True
    for _ in range(2):  # renewed by each paused beat
        beat.heartbeat.beat()
        assert r.get(marker) == b"1"
        assert 0 < r.pttl(marker) <= 5000
    beat.paused = False
    beat.heartbeat.beat()
    assert not r.exists(marker)


def test_a_command_no_watch_saw_arrives_within_a_few_beats(rq: Resque) -> None:
    """With a control watch the beats read the control list when it wakes them; a
    command it missed (it was reconnecting) is read within CONTROL_EVERY beats."""
    beat = _Beat(rq, watched=True)
    try:
        beat.heartbeat.beat()
        rq.redis.rpush(rq.keys.control(WID), "pause")
        for _ in range(CONTROL_EVERY):
            beat.heartbeat.beat()
        assert beat.delivered == ["pause"]
        assert rq.redis.llen(rq.keys.control(WID)) == 0
        rq.redis.rpush(rq.keys.control(WID), "resume")
        beat.heartbeat.wake()  # what the watch does when a command lands
        beat.heartbeat.beat()
        assert beat.delivered == ["pause", "resume"]
    finally:
        beat.close()
