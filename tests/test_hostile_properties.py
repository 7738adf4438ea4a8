"""Property tests: generated queue items and in-flight records through real workers.

One worker process per execution mode serves every example of its test (Hypothesis
runs them all inside one fixture instance). Each example pushes a batch of
generated items (tests/hostile_gen.py) and a good job after them, then checks that
every item has exactly one fate, ran once or failed once, and that the worker is
still alive. The long campaign is benchmarks/fuzz.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
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

    def told(self, failed: AssertionError) -> AssertionError:
        """``failed`` with the end of the worker's log: what it made of the example."""
        log = self.proc.log()[-6000:]
        return AssertionError(f"{failed}\n--- the worker's log, its end:\n{log}")


@pytest.fixture(params=MODES)
def served(request: pytest.FixtureRequest, procs: Procs, state: State) -> Served:
    proc = start_worker(procs, state.ns, request.param)
    # Started before the first example: its 60 s are for the example, not the start.
    proc.wait_log("started (")
    return Served(proc, state)


@SETTINGS
@given(batch=st.lists(gen.items(), min_size=1, max_size=6))
def test_generated_items_run_once_or_fail_and_the_worker_goes_on(
    served: Served, batch: list[gen.Item]
) -> None:
    state = served.state
    gen.run_items(state.r, state.ns, served.ledger, batch, served.proc.running)
    served.check()


@pytest.mark.parametrize("served", ["fork"], indirect=True)
# Each example waits for a heartbeat (a second), and up to 60 s for every fate: a failure
# is reported as generated (six records at most), not shrunk, as each rerun of a failing
# example could wait its minute (a loaded suite run spent 639 s so).
@settings(SETTINGS, max_examples=5, phases=[Phase.explicit, Phase.generate])
@given(found=st.lists(gen.records(), min_size=1, max_size=6))
def test_generated_inflight_records_are_recovered_or_failed_one_by_one(
    served: Served, found: list[gen.Record]
) -> None:
    state = served.state
    try:
        gen.run_records(state.r, state.ns, served.ledger, found, served.proc.running)
    except AssertionError as exc:
        raise served.told(exc) from exc
    served.check()
