"""A main-thread wait over several groups (worker/wake_wait.py) ended by signals at
random instants, as the worker's QUIT, TERM and pause end it (signals.py raises
``Wake`` in the main thread, once per wait), while tokens are pushed and the keys
change. Whatever bytecode the ``Wake`` lands on: only the ``Wake`` comes out (no
``release unlocked lock``), no token is lost (each was returned by a wait or is back
on its list), no wait stays counted (a late token goes back), and every group still
has a live thread (a later wait is woken by a token on any group's keys)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
import redis

from pyresque.worker import wake_wait
from pyresque.worker.signals import Wake
from pyresque.worker.wake_wait import WakeWait
from signal_storm import Storm

#: How long signals fall (the test then settles and checks, well within 30 s).
STORM = 6.0
#: Keys per group here: six groups of four keys, seven once a key is added.
SMALL = 4


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake_wait, "GROUP", SMALL)


def test_signals_at_any_instant_leave_the_waits_sound(
    small_groups: None, redis_client: redis.Redis, namespace: str
) -> None:
    client = redis_client  # the waits' and the producer's
    keys = [f"{namespace}:pyresque:wake:q{i:02d}" for i in range(6 * SMALL)]
    more = [f"{namespace}:pyresque:wake:new", *keys]  # every group's keys change
    waits = WakeWait(client, f"{namespace}:", False)
    pushed: Counter[bytes] = Counter()
    taken: Counter[bytes] = Counter()
    errors: list[BaseException] = []
    done = threading.Event()

    def produce() -> None:
        while not done.wait(random.uniform(0.0005, 0.004)):
            key = random.choice(more)
            redis_client.rpush(key, "1")
            pushed[key.encode()] += 1

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with Storm(WakeWait.wait) as storm:
            end = time.monotonic() + STORM
            waited = 0
            while time.monotonic() < end:
                waited += 1
                now = more if waited // 7 % 2 else keys
                storm.arm()
                try:
                    reply = waits.wait(client, now, random.choice([0.02, 0.3]))
                except Wake:
                    continue
                except Exception as exc:  # recorded: the storm goes on, the checks say all
                    errors.append(exc)
                    continue
                if reply is not None:
                    taken[reply[0]] += 1
    finally:
        done.set()
        producer.join()
    try:
        assert storm.raised > 100, "too few signals landed inside a wait to test anything"
        assert not errors, f"not a Wake: {errors[:3]!r} ({len(errors)} in all)"
        # Tokens the groups' pending BLPOPs take now, no wait being on, go back.
        deadline = time.monotonic() + 15
        while True:
            left = Counter({k.encode(): int(redis_client.llen(k)) for k in more})
            if left + taken == pushed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert left + taken == pushed, f"tokens lost: {pushed - left - taken}"
        # No wait is left counted and every group waits: a token on any group's keys
        # (pushed before the wait: its group's BLPOP takes it when sent) ends a wait.
        redis_client.delete(*more)
        for key in more[::SMALL]:
            redis_client.rpush(key, "1")
            reply = waits.wait(client, more, 10.0)
            assert reply is not None, f"no wait on {key}'s group"
            assert tuple(reply) == (key.encode(), b"1")
    finally:
        waits.close()
