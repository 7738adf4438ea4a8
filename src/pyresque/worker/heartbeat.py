"""A worker's lease: the heartbeat that renews it, and how long jobs may run on it.

The heartbeat (once every ``lease / 5``, and at once when a command comes:
control_watch.py) renews the worker's lease, keeps it registered, collects its control
commands and the jobs marked cancelled, reads Ruby's ``pause-all-workers`` flag
(``paused_all``: the worker's claims obey it a beat late at most, and read no key per
job), and recovers the jobs of workers whose lease expired (recovery.py). Its calls
go through a lease client (connection.lease_client), so that each ends, retry
included, within half the lease. A job may run only until ``lease_deadline`` of the
last renewal; past it the worker stops its jobs and claims no more until the lease
is renewed (executor.Stop), so a worker that recovers them never runs them at the same time.

A worker unregisters once ``stop`` returned: no beat writes from then on, and a write in
flight has ended, so that none lands after the unregistration and lists a dead worker
again (resque-web, ``pyresque workers``) until another worker reaps it. Only a write that
got no reply (a timeout) may land still: ``stop`` logs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from pyresque.middleware.history import HistoryBuffer
from pyresque.protocol.beat import Beat, one_beat
from pyresque.protocol.commands import pause_all_set
from pyresque.protocol.durability import Replicas, run_durably
from pyresque.protocol.keys import Keys
from pyresque.protocol.supervision import Supervised
from pyresque.worker.control_watch import ControlWatch
from pyresque.worker.recovery import Recovery

log = logging.getLogger("pyresque.recovery")

#: The share of the lease a job may run on after the renewal's call was sent; the
#: rest is kept back to stop the worker's jobs before anyone may recover them.
LEASE_RUN_SHARE = 0.75
#: With a control watch, the beats read the control list when it woke them, and every
#: this many beats besides.
CONTROL_EVERY = 5
#: How long ``stop`` waits for the thread at least (seconds).
STOP_WAIT = 5.0


def lease_deadline(sent_at: float, lease: float) -> float:
    """Until when (``time.monotonic()``) a job may run on a lease whose renewal was sent
    at ``sent_at``: Redis set its expiry to its own now + ``lease``, and its now was no
    earlier than the call."""
    return sent_at + lease * LEASE_RUN_SHARE


class _Closed(Exception):
    """The heartbeat stopped: no registration write is sent."""


class Heartbeat(threading.Thread):
    """Beats once per interval in the background: lease, registration, commands, recovery.

    ``client`` should be a lease client (connection.lease_client), so that each beat
    ends well inside the lease. After each renewal ``on_renewed`` gets the new
    ``lease_deadline``. No exception ends the thread (supervision.py).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        worker_id: str,
        lease_ms: int,
        started: str,
        recovery: Recovery,
        on_command: Callable[[str], None],
        history: HistoryBuffer,
        *,
        paused: Callable[[], bool] = lambda: False,
        on_renewed: Callable[[float], None] = lambda deadline: None,
        on_marked: Callable[[frozenset[str]], None] = lambda ids: None,
        control_client: redis.Redis | None = None,
        durability: Replicas | None = None,
        shards: Callable[[], list[Keys]] = list,
    ) -> None:
        super().__init__(name="pyresque-heartbeat", daemon=True)
        self._redis = client
        self._keys = keys
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self.started = started
        self.recovery = recovery
        self.on_command = on_command
        self.on_renewed = on_renewed
        self.on_marked = on_marked  # the ids marked cancelled (Resque.cancel), each beat
        self.history = history  # the worker's history counts: written on each beat
        self.paused = paused  # published on each beat, for `pyresque workers`
        # Ruby's pause-all-workers as the last beat read it (on Cluster in the home slot):
        # claims obey it, so that none reads the key per job.
        self.paused_all = False
        # Beats that found the worker unregistered: the keys it named may be gone (a reap,
        # a Redis that lost its data), so its landing lists are named again (landing_claims.py).
        self.registrations = 0
        self._registered = False  # the next beat registers (writes the started key)
        self._marker: bool | None = None  # the paused marker as the last beat left it
        self._control_unread = True  # a command may be waiting on the control list
        self._beats = 0
        # On Cluster: the slots of the worker's queues, each holding a lease of its own.
        self.shards = shards
        self.interval = lease_ms / 1000 / 5
        # With a durability policy a renewal counts once replicas have it: a failover
        # then never hands the new master an older lease than the one jobs run on.
        self.durability = durability
        self._unreplicated = False
        self._stopped = threading.Event()
        # Held while a beat's registration writes are in flight; none is sent once closed.
        self._writing = threading.Lock()
        self._closed = False
        self._unanswered = False  # the last write got no reply: it may still land
        self._woken = threading.Event()  # beat now: a command came
        self._beaten = threading.Event()  # a beat ended since the last wake
        # Without a client for it (a worker run by hand), commands wait for the next beat.
        control = keys.control(worker_id)
        self._watch = ControlWatch(control_client, control, self.wake) if control_client else None
        # A failed beat is retried soon: the lease runs out after five intervals.
        self._supervised = Supervised("heartbeat", log, self.interval, self.interval * 2)

    def beat(self) -> list[tuple[Keys, str]]:
        """One heartbeat; returns the workers whose lease has expired, each with the
        keys where (on Cluster, the slot of one of our queues)."""
        sent = time.monotonic()
        registering = not self._registered
        if (first := self._send(registering)) is None:
            return []  # the worker stops: nothing written
        done, durable = first
        commands, replaced, again = done.commands, done.replaced, done.again
        if again and not registering:
            # Unregistered since the last beat (a reap, a prune, a Redis that lost its
            # data): register now, its started key with it (until a call succeeds).
            self._registered = False
            if (second := self._send(True)) is None:
                return []
            done, renewed = second
            commands, replaced = commands + done.commands, replaced + done.replaced
            durable = durable and renewed
        self.registrations += again
        self.paused_all = pause_all_set(done.pause_all)
        marked = done.marked
        found = [(self._keys, member) for member in done.expired]
        for shard in self.shards():  # renewed in every slot before the lease counts
            lease_args = [self.worker_id, self.lease_ms]
            try:
                with self._fence():
                    reply, renewed = run_durably(
                        self._redis, "lease_renew", [shard.leases], lease_args, self.durability
                    )
            except _Closed:
                return []
            durable = durable and renewed
            found += [(shard, member) for member in reply]
        if durable:
            self.on_renewed(lease_deadline(sent, self.lease_ms / 1000))
        elif not self._unreplicated:
            log.error(
                "worker %s: its lease renewal was not replicated in time (durability "
                "policy): it does not count, and jobs stop if none is in time",
                self.worker_id,
            )
        self._unreplicated = not durable
        for key in replaced:
            log.warning(
                "deleted %r: it was not of the type pyresque keeps there",
                key.decode(errors="replace"),
            )
        for command in commands:
            self._command(command)
        # Job ids are text: one that is not was not written by Resque.cancel.
        ids = frozenset(m.decode(errors="replace") for m in marked)
        self._supervised.guard(self.on_marked, ids)
        dead = []
        for where, member in found:
            try:
                dead.append((where, member.decode()))
            except UnicodeDecodeError:  # no worker's id (ids are text): drop it, or it
                log.warning("dropping a lease whose worker id is not UTF-8: %r", member[:80])
                self._redis.zrem(where.leases, member)  # would hide real ones
        return [(where, w) for where, w in dead if w != self.worker_id]

    def _send(self, registering: bool) -> tuple[Beat, bool] | None:
        """One beat in Redis (protocol/beat.py) and whether its renewal is durable (None:
        the heartbeat stopped, nothing written); the keys named after the worker id (100 kB
        and more with thousands of queues) only when needed."""
        paused = self.paused()
        # The control list: when a command came (the watch woke us), when no watch
        # runs, and every few beats in case one came while the watch reconnected.
        read = self._watch is None or self._control_unread or self._beats % CONTROL_EVERY == 0
        # The marker expires with the lease: set on each paused beat, deleted once after.
        marker = "1" if paused else ("" if self._marker is False else "0")
        self._beats += 1
        self._control_unread = False  # a wake from now on is for the next beat
        try:
            found, durable = one_beat(
                self._redis,
                self._keys,
                self.worker_id,
                self.lease_ms,
                started=self.started if registering else "",
                marker=marker,
                read_control=read,
                durability=self.durability,
                fence=self._fence(),
            )
        except _Closed:
            return None
        except BaseException:
            self._control_unread = self._control_unread or read
            raise
        self._control_unread = self._control_unread or found.more_commands
        self._marker = paused
        self._registered = self._registered or registering
        return found, durable

    @contextmanager
    def _fence(self) -> Iterator[None]:
        """Around a registration write, which ``stop`` waits for; raises ``_Closed`` instead
        once stopping."""
        with self._writing:
            if self._closed:
                raise _Closed
            self._unanswered = True
            yield
            self._unanswered = False  # an exception (no reply) skips this

    def _command(self, command: bytes) -> None:
        """Deliver one control message; one that is not text is dropped."""
        try:
            name = command.decode()
        except UnicodeDecodeError:
            log.warning("dropping a control command that is not UTF-8: %r", command[:100])
            return
        self._supervised.guard(self.on_command, name)

    def beat_and_recover(self) -> None:
        """A beat, the recovery of the dead workers it reported, the history flush."""
        began = time.monotonic()
        dead_workers = self.beat()
        if self._closed:
            return  # the worker stops: its teardown flushes the history
        for where, dead in dead_workers:
            if time.monotonic() - began > self.lease_ms / 2000:
                break  # renew in time; the rest are reported again on the next beat
            # One dead worker's bad data never stops the recovery of the others.
            self._supervised.guard(self.recovery.on(where).recover_worker, dead)
        # Workflow follow-ups a killed worker left: after a lease, its writer is gone.
        self._supervised.guard(self.recovery.drain_outbox, self.lease_ms)
        self.history.flush(self._redis, self._keys)

    def renew(self) -> None:
        """One beat now, from the caller's thread; a failure is logged (the thread's
        next beats retry)."""
        self._supervised.call(self.beat)

    def wake(self) -> None:
        """Beat now (a command came: control_watch.py); returns once a beat ended, or
        after an interval, so a list the beats cannot read is not watched in a loop."""
        self._control_unread = True
        self._beaten.clear()
        self._woken.set()
        self._beaten.wait(self.interval)

    def run(self) -> None:
        if self._watch:
            self._watch.start()
        delay = self.interval
        while not self._stopped.is_set():
            self._woken.wait(delay)
            self._woken.clear()
            if self._stopped.is_set():
                break
            delay = self._supervised.call(self.beat_and_recover)
            self._beaten.set()

    def stop(self) -> None:
        """Stop beating, before the worker unregisters: no registration write is sent from
        now on, and one in flight is waited for, so that none lands after."""
        self._stopped.set()
        self._woken.set()
        self._closed = True
        if self._watch:
            self._watch.stop()
        # A write's call ends, retry included, within half the lease (lease_client): with
        # a lease over 8 s that is longer than the 5 s the thread is waited for otherwise.
        wait = max(STOP_WAIT, self.lease_ms / 2000 + 1)
        until = time.monotonic() + wait
        if self._writing.acquire(timeout=wait):
            self._writing.release()
        if self._unanswered:  # in flight still, or it ended without a reply
            log.warning(
                "worker %s: its last heartbeat write got no reply (Redis slow or unreachable):"
                " should it land after the worker unregistered, the worker is listed until "
                "another worker reaps it once its lease expired",
                self.worker_id,
            )
        if self.is_alive():
            self.join(timeout=max(until - time.monotonic(), 0))
