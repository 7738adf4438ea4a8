"""Hostile data in other workers' records (issue 11, section 1): whatever a Ruby, PHP or
broken worker left in ``workers``, ``worker:<id>`` and the heartbeats hash, a pyresque
worker prunes what Resque's rules prune and never fails to start. On real Redis;
Hypothesis generates the records."""

from __future__ import annotations

import socket

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_gen import JSON, any_json
from pyresque import Events, Resque
from pyresque.worker.recovery import Recovery

HOST = socket.gethostname()
#: A pid no process has: such a worker on this host is dead, and pruned.
DEAD_PID = 2**22 + 12345
IDS = st.one_of(
    st.binary(min_size=1, max_size=20),
    st.just(f"{HOST}:{DEAD_PID}:q".encode()),
    st.builds(lambda b: f"{HOST}:{DEAD_PID}:".encode() + b, st.binary(max_size=10)),
)
RECORDS = st.one_of(
    st.binary(max_size=40),
    JSON.map(any_json),
    st.fixed_dictionaries({"queue": JSON, "payload": JSON, "run_at": JSON}).map(any_json),
    st.just(b'{"payload":' + b"[" * 3000 + b"]" * 3000 + b"}"),
)
BEATS = st.one_of(st.none(), st.binary(max_size=30), st.just(b"2001-01-01T00:00:00Z"))


def utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    workers=st.lists(
        st.tuples(IDS, RECORDS, BEATS), min_size=1, max_size=4, unique_by=lambda w: w[0]
    )
)
def test_pruning_survives_any_worker_record(
    workers: list[tuple[bytes, bytes, bytes | None]], redis_url: str, namespace: str
) -> None:
    resque = Resque(redis_url, namespace=namespace, events=Events())
    r: redis.Redis = resque.redis
    keys = resque.keys
    try:
        r.delete(keys.workers, keys.heartbeats, keys.failed, keys.pruning_lock)
        for worker_id, record, beat in workers:
            r.sadd(keys.workers, worker_id)
            r.set(f"{namespace}:worker:".encode() + worker_id, record)
            if beat is not None:
                r.hset(keys.heartbeats, worker_id, beat)
        recovery = Recovery(r, keys, resque.registry, recoverer="test")
        pruned = recovery.prune_foreign()  # must not raise, whatever the records hold
        # Dead by Resque's rules; an id that is not UTF-8 is skipped (no Resque writes one).
        dead = {
            w
            for w, _, b in workers
            if (w.startswith(f"{HOST}:{DEAD_PID}:".encode()) or b == b"2001-01-01T00:00:00Z")
            and utf8(w)
        }
        assert pruned == len(dead)
        assert not set(r.smembers(keys.workers)) & dead
        assert r.llen(keys.failed) <= len(dead)
    finally:
        r.close()
