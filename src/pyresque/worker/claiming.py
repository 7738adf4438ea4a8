"""A processor's claims: the next job for it (and, in concurrent modes, for each free
sibling), or a wait for one; the processor (processor.py) runs what they return."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from pyresque.protocol.claim import Claim
from pyresque.worker.fetch import Fetcher, Paused
from pyresque.worker.handoff import Box, Handoff
from pyresque.worker.landing import Lander
from pyresque.worker.landing_claims import NoLanding
from pyresque.worker.signals import Wake

if TYPE_CHECKING:
    from pyresque.worker.host import Host


class Claiming:
    """The claiming half of a processor (its state is set up by ``Processor``)."""

    worker: Host
    fetcher: Fetcher
    lander: Lander | NoLanding
    box: Box
    idle: bool
    busy: bool
    running_inline: bool
    _token_prefix: str
    _token_count: itertools.count[int]

    def _new_token(self) -> str:
        return f"{self._token_prefix}-{next(self._token_count)}"

    @property
    def in_main_thread(self) -> bool:
        return threading.current_thread() is threading.main_thread()

    def _next_job(self) -> Claim | None:
        worker = self.worker
        empty = self.lander.found_empty()  # so read once, before any other step
        if worker.paused or worker.heartbeat.paused_all:  # no claim reads pause-all-workers
            worker.title("Paused")
            self._wait(worker.options.interval or 1.0, block=False)
            return None
        if not worker.lease_ok():  # until the heartbeat renews it
            self._wait(0.1, block=False)
            return None
        handoff = worker.handoff
        if handoff is not None and not handoff.enter(self.box):
            message = handoff.wait_in(self.box, lambda: self.worker.shutting_down)
            if message != Box.WAIT:
                return message if isinstance(message, Claim) else None
        try:
            return self._claim_or_wait(empty)
        finally:
            if handoff is not None:
                handoff.stop_waiting()

    def _claim_or_wait(self, empty: bool) -> Claim | None:
        """Claim a job for this processor and for each free one (concurrent modes); with
        nothing to claim, wait for a wake-up token (or the interval). ``empty``: the
        lander's last look found its queue empty, so it waits at once (landing.py)."""
        worker = self.worker
        self.fetcher.refresh()  # globs: at most once a second for the worker (queue_list.py)
        boxes, tokens = self._tokens_for_free()
        claims: list[Claim] | Paused = []
        lander = self.lander
        try:
            if isinstance(lander, Lander) and lander.fast:
                # Onto the landing list (landing.py); not again right after a look that
                # found nothing: the wait below takes what came since.
                claims = [] if empty else lander.claim(tokens[0])
            else:
                claims = self.fetcher.claim(tokens)
        finally:  # even when the call failed: every box gets an answer
            mine = self._hand_out(tokens, boxes, claims)
        if isinstance(mine, Paused):  # our lease expired in Redis: until the heartbeat renews it
            self._wait(0.1, block=False)
            return None
        if isinstance(mine, Claim):
            return mine
        if worker.options.interval > 0:
            worker.title(f"Waiting for {','.join(worker.queues.patterns)}")
            if isinstance(self.lander, Lander) and self.lander.blocks:
                return self.lander.wait(worker.options.interval, self._new_token(), self)
            self.lander.found_empty()  # this wait follows the look: the next claim looks
            self._wait(worker.options.interval, block=worker.options.blocking)
        return None

    def _tokens_for_free(self) -> tuple[list[Box], list[str]]:
        """The free processors' boxes, and a claim token each plus one for us (held: a
        claim whose reply is lost is not an orphan)."""
        boxes = self.worker.handoff.take_free() if self.worker.handoff else []
        return boxes, [self.worker.hold(self._new_token()) for _ in range(1 + len(boxes))]

    def _hand_out(
        self, tokens: list[str], boxes: list[Box], claims: list[Claim] | Paused
    ) -> Claim | Paused | None:
        """Release the tokens that got no job, hand each box its job (or nothing), and
        return ours: the first in line."""
        got = claims if isinstance(claims, list) else []
        for token in tokens[len(got) :]:
            self.worker.release(token)  # if a lost reply claimed it, _redis_back gives it back
        Handoff.hand_out(boxes, got[1:])
        if isinstance(claims, Paused):
            return claims
        return got[0] if got else None

    def _wait(self, seconds: float, block: bool) -> None:
        """Wait for a wake-up token (or just sleep). In the main thread any signal ends the
        wait early; other threads wait at most a second, so they notice a shutdown soon."""
        if not self.in_main_thread:
            seconds = min(seconds, 1.0)
        try:
            self.idle = self.in_main_thread
            if self.worker.shutting_down:
                return
            if block and (self.fetcher.refresh() or self.fetcher.queues.dynamic):
                self.fetcher.wait(seconds)  # after a new queue, the next claim reads it
            else:
                self.worker.sleep(seconds)
        except Wake:
            pass
        finally:
            self.idle = False
