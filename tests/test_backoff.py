"""protocol.backoff: the one exponential backoff (Redis outages, crash loops, job retries)."""

from __future__ import annotations

import itertools
import random

from pyresque.protocol.backoff import Backoff, delay


def test_delay_doubles_from_first_up_to_the_cap_within_its_jitter() -> None:
    rng = random.Random(7)
    assert [delay(n, 0.1, 1.0, jitter=0) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    spread = [delay(3, 1.0, 100.0, rng=rng) for _ in range(500)]
    assert 4 * 0.8 <= min(spread) < 4 * 0.85
    assert 4 * 1.15 < max(spread) <= 4 * 1.2
    assert max(delay(50, 1.0, 10.0, rng=rng) for _ in range(500)) <= 10.0  # jitter stays capped
    assert delay(10**9, 1.0, 10.0, jitter=0) == 10.0  # a very long outage cannot overflow


def test_a_loops_waits_grow_with_failures_in_a_row_and_start_again_after_a_success() -> None:
    waits = Backoff(0.5, 30.0)
    grown = [waits.next() for _ in range(8)]
    assert waits.failures == 8
    assert grown[0] <= 0.6
    assert grown[-1] >= 24.0
    assert all(later > earlier for earlier, later in itertools.pairwise(grown[:7]))
    waits.reset()
    assert waits.failures == 0
    assert waits.next() <= 0.6
