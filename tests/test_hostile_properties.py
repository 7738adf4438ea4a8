"""Property tests: generated queue items and in-flight records through real workers.

One worker process per execution mode serves every example of its test (Hypothesis
runs them all inside one fixture instance). Each example pushes a batch of
generated items (tests/hostile_gen.py) and a good job after them, then checks that
every item has exactly one fate, ran once or failed once, and that the worker is
still alive. The long campaign is benchmarks/fuzz.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_gen as gen
from e2e_support import Proc, Procs, State
from test_hostile_payloads import MODES, start_worker

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Served:
    """A worker of one mode and what it has done so far."""

    def __init__(self, proc: Proc, state: State) -> None:
        self.proc = proc
        self.state = state
        self.ledger = gen.Ledger(state.r, state.ns)

    def check(self) -> None:
        assert "Traceback" not in self.proc.log(), self.proc.log()


@pytest.fixture(params=MODES)
def served(request: pytest.FixtureRequest, procs: Procs, state: State) -> Served:
    return Served(start_worker(procs, state.ns, request.param), state)


@SETTINGS
@given(batch=st.lists(gen.items(), min_size=1, max_size=6))
def test_generated_items_run_once_or_fail_and_the_worker_goes_on(
    served: Served, batch: list[gen.Item]
) -> None:
    state = served.state
    gen.run_items(state.r, state.ns, served.ledger, batch, served.proc.running)
    served.check()


@pytest.mark.parametrize("served", ["fork"], indirect=True)
@settings(SETTINGS, max_examples=5)  # each waits for a heartbeat (a second)
@given(found=st.lists(gen.records(), min_size=1, max_size=6))
def test_generated_inflight_records_are_recovered_or_failed_one_by_one(
    served: Served, found: list[gen.Record]
) -> None:
    state = served.state
    gen.run_records(state.r, state.ns, served.ledger, found, served.proc.running)
    served.check()
