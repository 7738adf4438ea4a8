"""A beat writes the worker id with plain commands, and the keys named after it only
when needed (protocol/beat.py: with thousands of queues the id is 100 kB and more):
what it leaves out must still be written when it matters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pyresque import Resque
from pyresque.dev.server import RedisServer
from pyresque.middleware.history import HistoryBuffer
from pyresque.protocol.beat import one_beat
from pyresque.protocol.connection import dedicated, lease_client
from pyresque.protocol.durability import Replicas
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


def test_no_script_of_a_beat_carries_the_worker_id_but_the_registering_one() -> None:
    """Redis copies a script's keys and arguments into Lua at ~1.2 ns a byte: a 120 kB id
    (10,000 queues) cost each beat ~145 µs per time it entered. Only plain commands carry
    it, but the started key's type check when the worker registers."""
    with RedisServer() as server:
        rq = Resque(server.url)
        beat = _Beat(rq, watched=True)
        try:
            rq.redis.config_set("slowlog-log-slower-than", 0)
            beat.heartbeat.beat()  # registers
            logged = [e["command"] for e in rq.redis.slowlog_get(1000)]
            assert any(c.startswith(b"EVALSHA") and WID[:30].encode() in c for c in logged)
            rq.redis.slowlog_reset()
            rq.redis.rpush(rq.keys.control(WID), "pause")
            beat.heartbeat.wake()  # the next beat reads the control list
            for _ in range(CONTROL_EVERY + 1):
                beat.heartbeat.beat()
            assert beat.delivered == ["pause"]
            logged = [e["command"] for e in rq.redis.slowlog_get(1000)]
            scripts = [c for c in logged if c.startswith((b"EVAL", b"FCALL"))]
            assert scripts
            assert not [c[:200] for c in scripts if WID[:30].encode() in c]
            # Its lease, registration and Ruby's heartbeat are written all the same.
            assert rq.redis.zscore(rq.keys.leases, WID)
            assert rq.redis.sismember(rq.keys.workers, WID)
            assert rq.redis.hget(rq.keys.heartbeats, WID)
        finally:
            beat.close()
            rq.redis.close()


def test_a_control_list_of_another_type_is_replaced_and_the_beat_goes_on(
    rq: Resque, beat: _Beat
) -> None:
    beat.heartbeat.beat()
    rq.redis.set(rq.keys.control(WID), "not a list")
    beat.heartbeat.beat()  # no watch: each beat reads the control list
    assert not rq.redis.exists(rq.keys.control(WID))
    rq.redis.rpush(rq.keys.control(WID), "pause")
    beat.heartbeat.beat()
    assert beat.delivered == ["pause"]


def test_a_renewal_no_replica_acknowledged_is_written_and_said_not_durable(rq: Resque) -> None:
    """With a durability policy the lease counts once replicas have it: the beat's
    plain writes are followed by a WAIT on their connection (the session's server has
    no replica)."""
    found, durable = one_beat(rq.redis, rq.keys, WID, 5000, durability=Replicas(1, 50))
    assert not durable
    assert found.again
    assert rq.redis.zscore(rq.keys.leases, WID)
    found, durable = one_beat(rq.redis, rq.keys, WID, 5000)
    assert durable
    assert not found.again


def test_a_command_read_by_a_beat_whose_writes_failed_is_delivered_by_a_later_beat() -> None:
    """Out of memory (``maxmemory``, no eviction) Redis refuses the beat's writes but
    not a read or a pop of the control list: the beat fails (its lease not renewed),
    and the commands waiting are still there for the next one, not taken and dropped."""
    with RedisServer() as server:
        rq = Resque(server.url)
        beat = _Beat(rq)
        try:
            beat.heartbeat.beat()
            rq.redis.rpush(rq.keys.control(WID), "pause")
            rq.redis.config_set("maxmemory-policy", "noeviction")
            rq.redis.config_set("maxmemory", 1)
            with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
                beat.heartbeat.beat()
            rq.redis.config_set("maxmemory", 0)
            beat.heartbeat.beat()
            assert beat.delivered == ["pause"]
        finally:
            beat.close()
            rq.redis.close()
