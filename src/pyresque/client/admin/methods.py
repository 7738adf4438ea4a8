"""``Resque``'s admin methods, with the names Ruby and PHP users know: each one is a
call into the admin layer, so the producer class stays about producing and the CLI,
the dashboard and these methods share one implementation."""

from __future__ import annotations

from typing import Any

from pyresque.client.admin import cancel, delayed, idle_queues, queues, stats, workflows
from pyresque.client.admin.base import Namespace
from pyresque.client.admin.workflows import BatchInfo
from pyresque.jobs.job import JobRef
from pyresque.protocol.delayed import DelayedJob


class AdminMethods:
    """Queue, stats and delayed-job methods for a class that is a ``Namespace``."""

    # --- queues -------------------------------------------------------------------

    def pop(self: Namespace, queue: str) -> Any:
        """Pop the head of ``queue`` (not claimed: the caller owns it from now on)."""
        return queues.pop(self, queue)

    def size(self: Namespace, queue: str) -> int:
        return queues.size(self, queue)

    def queues(self: Namespace) -> list[str]:
        """Every queue's name (one that is not UTF-8 shows ``\\xNN`` escapes)."""
        return queues.names(self)

    def queue_sizes(self: Namespace) -> dict[str, int]:
        """Every queue's length by name (``queues.sizes``)."""
        return queues.sizes(self)

    def peek(self: Namespace, queue: str, start: int = 0, count: int = 1) -> list[Any]:
        """Payloads at positions ``start .. start+count-1``, decoded where possible."""
        return queues.peek(self, queue, start, count)

    def remove_queue(self: Namespace, queue: str) -> int:
        """Delete a queue and forget its name; returns how many jobs it held. The
        unique locks of its jobs are released."""
        return queues.remove_queue(self, queue)

    def forget_idle_queues(self: Namespace, idle: float) -> dict[str, list[str]]:
        """Take out of the ``queues`` set the queues empty and named by no worker at
        every call for ``idle`` seconds (opt-in: Resque keeps every name; see
        client/admin/idle_queues.py). Returns the names forgotten and restored."""
        return idle_queues.forget_idle_queues(self, idle)

    def cancel(self: Namespace, job_id: str) -> dict[str, Any]:
        """Cancel a queued, delayed or running job: its status becomes CANCELLED and its
        result waiters get ``JobCancelled``. A running job's worker stops it within
        about a second, unless it finished first (client/admin/cancel.py)."""
        return cancel.cancel(self, job_id)

    def remove(self: Namespace, queue: str, items: list[bytes]) -> int:
        """Remove queued jobs by their exact bytes (each item once), releasing their
        unique locks; returns how many were removed (a job a worker took is not)."""
        return queues.remove(self, queue, items)

    def dequeue(
        self: Namespace,
        queue: str,
        job: JobRef | None = None,
        *args: Any,
        job_id: str | None = None,
    ) -> int:
        """Remove queued jobs of a class (and, if given, exactly these args), or by id.

        ``dequeue("q", UserJob, {"name": "x"})`` matches what ``enqueue`` wrote with
        that data; ``dequeue("q", Archive, 44, "x")`` matches Ruby's positional args.
        Each match is removed by its exact bytes, so this is safe while workers run:
        a job a worker already took is simply not found. Their unique locks are released.
        """
        return queues.dequeue(self, queue, job, list(args), job_id)

    # --- workflows ------------------------------------------------------------------

    def batch(self: Namespace, batch_id: str) -> BatchInfo | None:
        """A group's live counts (``BatchInfo``), or None when there is no such batch."""
        return workflows.batch(self, batch_id)

    def batches(self: Namespace, limit: int = 100) -> list[BatchInfo]:
        """Recent batches, the newest first (``batches.recent``: for the dashboard)."""
        return workflows.recent(self, limit)

    def workflow_state(self: Namespace, job_id: str) -> str | None:
        """A workflow job's state: waiting (for dependencies), queued (or running), ok,
        failed or cancelled; None when it is not one (or its record expired)."""
        return workflows.state(self, job_id)

    # --- stats ----------------------------------------------------------------------

    def info(self: Namespace) -> dict[str, Any]:
        """What Ruby's ``Resque.info`` reports (whatever the keys hold)."""
        return stats.info(self)

    # --- delayed jobs ---------------------------------------------------------------

    def delayed_jobs(self: Namespace, offset: int = 0, limit: int = 100) -> list[DelayedJob]:
        """Scheduled jobs, soonest first."""
        return delayed.jobs(self, offset, limit)

    def delayed_count(self: Namespace) -> int:
        return delayed.count(self)

    def remove_delayed(
        self: Namespace, job: JobRef | None = None, *args: Any, job_id: str | None = None
    ) -> int:
        """Cancel scheduled jobs of a class (and, if given, exactly these args), or by id;
        returns how many. Their unique locks are released."""
        return delayed.take(self, "cancel", job, list(args), job_id)

    def enqueue_delayed_now(
        self: Namespace, job: JobRef | None = None, *args: Any, job_id: str | None = None
    ) -> int:
        """Enqueue scheduled jobs now instead of at their time (same matching as
        ``remove_delayed``); returns how many."""
        return delayed.take(self, "enqueue", job, list(args), job_id)
