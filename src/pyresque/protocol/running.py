"""What a worker shows of a running job: resque-web's ``worker:<id>`` and RUNNING.

Resque writes ``worker:<id>`` (``{"queue","run_at","payload"}``, what resque-web's
Working page shows) before every job and deletes it after; php-resque marks a
tracked job RUNNING before it starts. Both cost the Redis server work per job, for
a state no observer could tell apart from its absence when the job lasts a few
milliseconds. So the ``RunningMarker`` thread writes both (mark_running.lua) for a
job that is still running ``delay`` to ``2 * delay`` seconds after it started, and at
once for the job in flight when nothing was written for a second (``SHOW_EVERY``): a
worker busy with short jobs shows as working, as a Ruby one mostly does. The record
stays while the worker goes from job to job; the finish that leaves it with nothing
in flight and no next job deletes it (lib_finish.lua).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import redis

from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.protocol.scripts import ScriptCall
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.status")

#: At least this often (seconds), a worker with a job in flight shows one in worker:<id>.
SHOW_EVERY = 1.0


def working_record(claim: Claim, now: float) -> str:
    """``worker:<id>``'s value for a job, as Ruby's ``working_on`` writes it. resque-web
    expects ``payload`` to be an object: a malformed payload is shown as a string."""
    try:
        shown = claim.raw.decode() if isinstance(json.loads(claim.raw), (dict, list)) else None
    except ValueError:  # not JSON, or not UTF-8
        shown = None
    if shown is None:
        shown = json.dumps(claim.raw.decode("utf-8", "backslashreplace"))
    run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return f'{{"queue":{json.dumps(claim.queue)},"run_at":"{run_at}","payload":{shown}}}'


def mark_running(
    client: redis.Redis,
    keys: Keys,
    worker_id: str,
    claim: Claim,
    status_key: str | None,
    landed: str = "",
) -> int | bytes:
    """Show ``claim`` as the job ``worker_id`` works on, and mark it RUNNING when
    ``status_key`` is given; 0 (nothing written) when it is no longer in flight (in
    the in-flight hash, or for a job ``landed`` on a landing list, on that list), else 1,
    or for a tracked job the ``started`` of its status (JSON), which a plain finish
    carries."""
    held = landed or keys.inflight(worker_id)
    call_keys = [held, keys.worker(worker_id)]
    args: list[str | bytes] = [claim.token, working_record(claim, time.time())]
    args.append("1" if status_key else "")
    if landed:
        args += ["1", claim.raw]
    call_keys += [status_key] if status_key else []
    reply = scripts.run(client, "mark_running", call_keys, args)
    return reply if isinstance(reply, bytes) else int(reply)


class Mark:
    """A started job's pending write; ``finish()`` before recording its end."""

    def __init__(
        self,
        claim: Claim,
        payload: Payload | None,
        due: float,
        first: ScriptCall | None,
        landed: str = "",
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.show = wake  # the executor asks for the write once ``due`` (executors/base.py)
        self.claim = claim
        self.landed = landed  # the landing list it runs from (landing.py), or ""
        self.payload = payload  # its decoded payload: one with an id may be tracked
        self.due = due
        self.first = first  # a script call to run before the write (a landed job's adoption)
        self.lock = threading.Lock()
        self.done = False
        self.started: bytes | None = None  # a tracked job's status ``started`` (JSON), once shown

    def finish(self) -> None:
        # Taking the lock waits for a write in progress, so it always lands before the
        # job's finish. The wait is bounded: the marker's calls end within half the
        # lease (connection.lease_client), whatever they raise.
        with self.lock:
            self.done = True


class RunningMarker(threading.Thread):
    """Writes ``worker:<id>`` and RUNNING off the hot path, for jobs still running
    ``delay`` to ``2 * delay`` seconds after they started.

    It also knows whether ``worker:<id>`` may be written now (``shown``): the finish
    then deletes it once nothing else is in flight, and tells (``cleared``).
    ``client`` should bound its calls (connection.lease_client). No exception ends
    the thread (supervision.py).
    """

    def __init__(
        self, client: redis.Redis, keys: Keys, worker_id: str, delay: float = 0.005
    ) -> None:
        super().__init__(name="pyresque-status", daemon=True)
        self._redis = client
        self._keys = keys
        self.worker_id = worker_id
        self.delay = delay
        self._marks: list[Mark] = []  # in start order, so the earliest due comes first
        self._lock = threading.RLock()  # reentrant: the alarm's show() may come within
        self._wake = threading.Condition(self._lock)
        self._asleep = False  # waiting with no timeout: a new mark must notify
        self._stopped = False
        self._done = threading.Event()  # set with _stopped
        self._supervised = Supervised("RUNNING status", log, delay)
        # worker:<id> writes so far, and how many of them a finish is known to have
        # cleared: while they differ, the record may be there (processors of one
        # worker finish concurrently, so a clear only counts the writes it saw).
        self._writes = 0
        self._cleared = 0
        self._shown_at = -SHOW_EVERY  # monotonic time of the last write that showed a job
        self._started_at = -SHOW_EVERY  # ... of the last job's start

    def started(
        self,
        claim: Claim,
        payload: Payload | None,
        first: ScriptCall | None = None,
        landed: str = "",
    ) -> Mark:
        """Schedule the writes for a job that just started (``payload``: its decoded
        payload, if it could be decoded: a job with an id may be tracked), after the
        script call ``first`` if given (it must be safe to run twice); a job ``landed``
        on a landing list is looked for there. No thread is woken here (but once a second for
        a busy worker that showed nothing): the caller calls the mark's ``show()`` once
        it is ``due`` (executors/base.py ``Showing``)."""
        now = time.monotonic()
        mark = Mark(claim, payload, now + self.delay, first, landed, self.wake)
        with self._lock:  # the Condition's own lock, entered without its Python methods
            self._marks.append(mark)  # the thread sees it within ``delay``, or once woken
            # A worker busy with jobs shorter than ``delay`` asks for no write, and the
            # thread sleeps in the gaps between them: wake it for the newest job when
            # nothing was shown for SHOW_EVERY (about once a second, and never for the
            # first job after an idle second, whose start it would compete with).
            busy, self._started_at = now - self._started_at < SHOW_EVERY, now
            if busy and self._asleep and now - self._shown_at >= SHOW_EVERY:
                self._wake.notify()
        return mark

    def wake(self) -> None:
        """A mark is due (``Mark.show``): wake the thread if it sleeps with none."""
        with self._wake:
            if self._asleep:
                self._wake.notify()

    def shown(self) -> int | None:
        """The count of writes so far if ``worker:<id>`` may be written, else None."""
        with self._wake:
            return self._writes if self._writes != self._cleared else None

    def cleared(self, seen: int) -> None:
        """A finish deleted ``worker:<id>``, knowing of the first ``seen`` writes."""
        with self._wake:
            if self._writes == seen:
                self._cleared = seen

    def run(self) -> None:
        self._supervised.until_done(self._mark_all, self._done)

    def _mark_all(self) -> None:
        while (mark := self._next()) is not None:
            with mark.lock:
                if not mark.done:
                    self._supervised.call(self._write, mark)

    def _write(self, mark: Mark) -> None:
        if mark.first is not None:
            scripts.run(self._redis, *mark.first)
            mark.first = None
        with self._wake:
            self._writes += 1  # before the call: a finish sent meanwhile must not clear it
        keys = self._keys.for_queue(mark.claim.queue)  # on Cluster, the queue's slot
        payload = mark.payload  # its status key made here, not on the job's way to its start
        status_key = keys.status(payload.id, payload.prefix) if payload and payload.id else None
        shown = mark_running(self._redis, keys, self.worker_id, mark.claim, status_key, mark.landed)
        mark.started = shown if isinstance(shown, bytes) else None
        with self._wake:
            # A job that ended before the write shows nothing: try again a little later
            # (not at once: with very short jobs that would be a write per job).
            self._shown_at = time.monotonic() - (0 if shown else SHOW_EVERY * 0.9)

    def _next(self) -> Mark | None:
        # Wakes once per ``delay`` at most, not once per job: marks of jobs that ended
        # meanwhile are dropped unseen. With none left it waits one ``delay`` more before
        # sleeping until notified, so a worker busy with short jobs never has to wake it
        # (a notify per job costs a system call and a thread switch).
        lingered = False
        with self._wake:
            while not self._stopped:
                self._marks = [m for m in self._marks if not m.done]
                if not self._marks:
                    if lingered:
                        self._asleep = True
                        self._wake.wait()
                        self._asleep = lingered = False
                    else:
                        self._wake.wait(self.delay)
                        lingered = True
                    continue
                lingered = False
                now = time.monotonic()
                stale = self._shown_at + SHOW_EVERY - now
                if stale <= 0:  # nothing shown for a while: the newest job, now
                    return self._marks.pop()
                wait = self._marks[0].due - now
                if wait > 0:
                    self._wake.wait(min(wait, stale))
                    continue
                return self._marks.pop(0)
        return None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._done.set()
            self._wake.notify()
        if self.is_alive():
            self.join(timeout=5)
