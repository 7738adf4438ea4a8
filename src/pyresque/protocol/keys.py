"""Every Redis key pyresque reads or writes, built in one place.

Resque's own keys (spec section 1) keep their exact names so Ruby Resque,
php-resque and resque-web see the same data. Keys that only pyresque uses
live under the ``pyresque:`` sub-namespace so they never collide with a
Resque key or a Resque plugin's key.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "resque"


def normalize_namespace(namespace: str) -> str:
    """Return the key prefix for ``namespace``: ``app1`` and ``app1:`` both give ``app1:``.

    An empty namespace means no prefix at all (php-resque allows that).
    """
    namespace = namespace.rstrip(":")
    return f"{namespace}:" if namespace else ""


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace.

    On Redis Cluster (``clustered``, the namespace's name) the keys are laid over the
    slots by hash tags, so that each Lua script touches one slot only:

    * the namespace-wide keys (the ``queues`` set, the worker registry, control
      lists, history, cron, ...) are under ``{<ns>}:``, the namespace's home slot;
    * each queue has a slot of its own: ``for_queue(name)`` gives the keys under
      ``{<ns>:<name>}:``, where everything a job of that queue touches while it is
      queued, claimed and finished lives: the queue list and its wake list, the
      leases and in-flight hashes of the workers claiming from it, Resque's stats
      and failure list of its jobs, their status keys. ``queue(name)`` and
      ``wake(name)`` are in the queue's slot whatever Keys they are asked of.

    Without Cluster ``for_queue`` is the Keys itself: the names are Resque's.
    """

    prefix: str
    clustered: str = ""

    @classmethod
    def for_namespace(cls, namespace: str = DEFAULT_NAMESPACE, *, cluster: bool = False) -> Keys:
        if not cluster:
            return cls(normalize_namespace(namespace))
        name = namespace.rstrip(":")
        if not name or "{" in name or "}" in name:
            raise ValueError(
                f"namespace {namespace!r} cannot be used on Redis Cluster: pyresque puts "
                "it in hash tags, so it must be non-empty and hold no '{' or '}'"
            )
        return cls(f"{{{name}}}:", name)

    def for_queue(self, name: str) -> Keys:
        """The keys in queue ``name``'s slot (on Cluster), else these keys."""
        if not self.clustered:
            return self
        # The namespace in the tag keeps it non-empty whatever the name holds ('', '}...'):
        # no producer names a queue '' (client/checks.py), but anyone may write one in
        # the ``queues`` set, and its readers read it there.
        return Keys(f"{{{self.clustered}:{name}}}:", self.clustered)

    @property
    def home(self) -> Keys:
        """The namespace-wide keys: on Cluster, those of the home slot."""
        return Keys(f"{{{self.clustered}}}:", self.clustered) if self.clustered else self

    def shards(self, queues: list[str]) -> list[Keys]:
        """The keys of each slot ``queues`` live in, once each (on Cluster), else ``[self]``."""
        if not self.clustered:
            return [self]
        return list(dict.fromkeys(self.for_queue(name) for name in queues))

    def places(self, queues: list[str]) -> list[Keys]:
        """Every slot the namespace's data of ``queues`` is in: ``[self]`` without Cluster;
        on Cluster the home slot, then each queue's slot once."""
        return [self.home, *self.shards(queues)] if self.clustered else [self]

    def strip(self, key: str) -> str:
        """The key name without the namespace prefix."""
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    # --- Resque keys (shared with Ruby and PHP) -----------------------------

    @property
    def queues(self) -> str:
        return f"{self.prefix}queues"

    def queue(self, name: str) -> str:
        if self.clustered:
            return f"{self.for_queue(name).prefix}queue:{name}"
        return f"{self.prefix}queue:{name}"

    def queue_key(self, name: bytes) -> bytes:
        """The key of the queue named ``name`` as the ``queues`` set holds it (any bytes
        may name a queue: the key is those bytes under the prefix)."""
        if self.clustered:
            text = name.decode("utf-8", "surrogateescape")
            return self.queue(text).encode("utf-8", "surrogateescape")
        return f"{self.prefix}queue:".encode() + name

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def worker_started(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}:started"

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}workers:heartbeat"

    @property
    def pruning_lock(self) -> str:
        return f"{self.prefix}pruning_dead_workers_in_progress"

    @property
    def pause_all(self) -> str:
        return f"{self.prefix}pause-all-workers"

    def stat(self, name: str, worker_id: str | None = None) -> str:
        """``stat:processed`` / ``stat:failed``, or their per-worker variants."""
        suffix = f":{worker_id}" if worker_id else ""
        return f"{self.prefix}stat:{name}{suffix}"

    @property
    def failed(self) -> str:
        return f"{self.prefix}failed"

    def status(self, job_id: str, job_prefix: str = "") -> str:
        """php-resque's status key; >= 1.3.4 inserts the payload's ``prefix``."""
        middle = f"{job_prefix}_{job_id}" if job_prefix else job_id
        return f"{self.prefix}job:{middle}:status"

    # --- pyresque-only keys -------------------------------------------------

    def inflight(self, worker_id: str) -> str:
        """Hash of the jobs a worker has claimed: claim token -> in-flight record."""
        return f"{self.prefix}pyresque:inflight:{worker_id}"

    def landing(self, worker_id: str) -> str:
        """List a worker's idle wait moves a job onto with BLMOVE (landing.py): the job is
        in it from the moment it leaves its queue until the worker adopts it into its
        in-flight hash, so a worker that dies in between loses nothing."""
        return f"{self.prefix}pyresque:landing:{worker_id}"

    @property
    def leases(self) -> str:
        """Sorted set: worker id -> lease expiry (ms, Redis clock)."""
        return f"{self.prefix}pyresque:leases"

    def wake(self, queue: str) -> str:
        """A list that idle pyresque workers block on; a token means "look again"."""
        if self.clustered:
            return f"{self.for_queue(queue).prefix}pyresque:wake:{queue}"
        return f"{self.prefix}pyresque:wake:{queue}"

    def bulk(self, op_id: str) -> str:
        """Hash: a bulk action on the failed list and its progress (client/admin/bulk.py)."""
        return f"{self.prefix}pyresque:bulk:{op_id}"

    def bulk_lease(self, op_id: str) -> str:
        """String with a TTL: the token of the process running a bulk action."""
        return f"{self.prefix}pyresque:bulk-lease:{op_id}"

    @property
    def bulk_ops(self) -> str:
        """Sorted set: the latest bulk actions' ids -> when they were started."""
        return f"{self.prefix}pyresque:bulk"

    @property
    def queues_idle(self) -> str:
        """Sorted set: queue name -> when it was first seen empty and unwatched (ms),
        while ``forget_idle_queues`` runs (client/admin/idle_queues.py)."""
        return f"{self.prefix}pyresque:queues-idle"

    @property
    def queues_forgotten(self) -> str:
        """Sorted set: queue name -> when ``forget_idle_queues`` forgot it (ms)."""
        return f"{self.prefix}pyresque:queues-forgotten"

    @property
    def queues_changed(self) -> str:
        """A wake-up list for workers with globs: a token means "a new queue exists"."""
        return f"{self.prefix}pyresque:queues-changed"

    def removed_queue(self, token: str) -> str:
        """Where a queue being removed waits while its jobs' locks are released."""
        return f"{self.prefix}pyresque:removed-queue:{token}"

    def failed_sweep(self, token: str) -> str:
        """The list a bulk removal of failure records builds, then puts in ``failed``'s place."""
        return f"{self.prefix}pyresque:failed-sweep:{token}"

    @property
    def recovered(self) -> str:
        """Counter of jobs put back on their queue after a crash."""
        return f"{self.prefix}stat:recovered"

    def result(self, job_id: str) -> str:
        """A finished job's result record (JSON, with a TTL), when it asked for one."""
        return f"{self.prefix}pyresque:result:{job_id}"

    def result_ready(self, job_id: str) -> str:
        """A list that gets one element when the result is stored: waiters block on it."""
        return f"{self.prefix}pyresque:result-ready:{job_id}"

    def progress(self, job_id: str) -> str:
        """A running job's last reported progress (JSON, with a TTL: progress.py)."""
        return f"{self.prefix}pyresque:progress:{job_id}"

    def checkpoint(self, job_id: str) -> str:
        """A job's last checkpoint (JSON, with a TTL), deleted once the job has ended."""
        return f"{self.prefix}pyresque:checkpoint:{job_id}"

    # Workflows (dependencies, chains, groups): a few fixed keys, so a finish reaches
    # any dependent through keys it was given (lib_workflow.lua).

    @property
    def wf_jobs(self) -> str:
        """Hash: job id -> its workflow record (JSON): state, dependents, and while it
        waits its payload and the dependencies it waits for."""
        return f"{self.prefix}pyresque:wf:jobs"

    @property
    def wf_batches(self) -> str:
        """Hash: batch id -> its record (JSON): total, succeeded, failed, cancelled, callbacks."""
        return f"{self.prefix}pyresque:wf:batches"

    @property
    def wf_expiry(self) -> str:
        """Sorted set: ``j:<job id>`` / ``b:<batch id>`` -> when (ms) its record goes."""
        return f"{self.prefix}pyresque:wf:expiry"

    @property
    def wf_queues(self) -> str:
        """Set of the queues that jobs waiting for dependencies go to (a queue leaves it
        when ``wf_queue_jobs`` counts none for it)."""
        return f"{self.prefix}pyresque:wf:queues"

    @property
    def wf_queue_jobs(self) -> str:
        """Hash: queue -> how many workflow records (waiting, cancelled) hold its payloads."""
        return f"{self.prefix}pyresque:wf:queue-jobs"

    @property
    def wf_outbox(self) -> str:
        """Sorted set: the follow-ups a workflow call decided but whose keys are per job
        (``cancelled <id>``, ``waiting <id>``, ``settle <id>``) -> when (ms) they were
        recorded. Whoever made the call does them; a recovery pass, those a killed one left."""
        return f"{self.prefix}pyresque:wf:outbox"

    def paused(self, worker_id: str) -> str:
        """Set (with the lease's TTL) while a pyresque worker is paused (USR2, ``ctl pause``)."""
        return f"{self.prefix}pyresque:paused:{worker_id}"

    @property
    def cancels(self) -> str:
        """Sorted set: job id ``Resque.cancel`` marked -> until when (ms) (running_jobs.py)."""
        return f"{self.prefix}pyresque:cancels"

    def control(self, worker_id: str) -> str:
        """A list of commands (quit, pause, resume, cancel <id>) for one worker, from any host."""
        return f"{self.prefix}pyresque:control:{worker_id}"

    def history(self, metric: str, unit: str, bucket: int) -> str:
        """A rolling counter: ``metric`` (processed, failed) in one minute or hour.

        ``bucket`` is the epoch minute (``unit="m"``) or hour (``unit="h"``).
        """
        return f"{self.prefix}pyresque:history:{metric}:{unit}:{bucket}"

    @property
    def class_stats(self) -> str:
        """Hash of per-job-class totals: ``<class>:processed``, ``:failed``, ``:ms``, ``:le:*``."""
        return f"{self.prefix}pyresque:classes"

    # --- resque-scheduler keys (Ruby gem and php-resque's scheduler) ---------

    @property
    def delayed_schedule(self) -> str:
        """Sorted set of the timestamps that have delayed jobs (member = score = epoch s)."""
        return f"{self.prefix}delayed_queue_schedule"

    def delayed(self, timestamp: int) -> str:
        """List of the items due at ``timestamp``."""
        return f"{self.prefix}delayed:{timestamp}"

    def timestamps(self, item: str) -> str:
        """Ruby's index from an item's exact JSON to the ``delayed:<ts>`` lists holding it."""
        return f"{self.prefix}timestamps:{item}"

    def delayed_id(self, job_id: str) -> str:
        """The ``delayed:<ts>`` list a job scheduled by pyresque waits in, by its id
        (expires a day after the job is due)."""
        return f"{self.prefix}pyresque:delayed-id:{job_id}"

    @property
    def delayed_queues(self) -> str:
        """On Cluster, sorted set in the home slot: queue -> a second at or before the
        earliest job waiting in that queue's slot's schedule (delayed_shards.py)."""
        return f"{self.prefix}pyresque:delayed-queues"

    @property
    def delayed_gen(self) -> str:
        """On Cluster, hash in the home slot: queue -> how many times it was noted in
        ``delayed_queues`` (a scheduler settles an entry only if no one noted meanwhile)."""
        return f"{self.prefix}pyresque:delayed-gen"

    # --- pyresque scheduling keys -------------------------------------------

    @property
    def cron_leader(self) -> str:
        """The cron leader's lease: a string holding its id, with a TTL."""
        return f"{self.prefix}pyresque:cron:leader"

    @property
    def cron_schedules(self) -> str:
        """Hash: schedule name -> its definition (JSON), as the leader declared it."""
        return f"{self.prefix}pyresque:cron:schedules"

    @property
    def cron_ticks(self) -> str:
        """Hash: schedule name -> the last tick handled (epoch s): the idempotency record."""
        return f"{self.prefix}pyresque:cron:ticks"

    @property
    def cron_state(self) -> str:
        """Hash: schedule name -> last run, next run and outcome (JSON), for display."""
        return f"{self.prefix}pyresque:cron:state"

    @property
    def cron_paused(self) -> str:
        """Set of paused schedule names."""
        return f"{self.prefix}pyresque:cron:paused"

    def retry_state(self, digest: str) -> str:
        """A retried job's attempts and errors, for when a foreign scheduler drops them."""
        return f"{self.prefix}pyresque:retry:{digest}"

    def unique(self, digest: str) -> str:
        """A unique job's lock: the token of the one job with these arguments (on Cluster
        in a slot of its own by digest, so that it holds across queues: client/apart.py)."""
        if self.clustered:
            return f"{{{self.clustered}:unique:{digest}}}"
        return f"{self.prefix}pyresque:unique:{digest}"

    def concurrency(self, key: str) -> str:
        """Sorted set of the slots held under a concurrency limit: ``<worker>|<token>``."""
        return f"{self.prefix}pyresque:limit:concurrency:{key}"

    def concurrency_waiting(self, key: str) -> str:
        """List of the jobs waiting for a slot of a concurrency limit (FIFO)."""
        return f"{self.prefix}pyresque:limit:waiting:{key}"

    @property
    def limits_waiting(self) -> str:
        """Hash: concurrency key -> its limit, for every key that has waiting jobs."""
        return f"{self.prefix}pyresque:limit:waiting-keys"

    def rate(self, key: str) -> str:
        """Sorted set of the start times (ms) within a rate limit's window."""
        return f"{self.prefix}pyresque:limit:rate:{key}"

    def rate_waiting(self, key: str) -> str:
        """List of the jobs waiting for a rate limit's window to have room (FIFO)."""
        return f"{self.prefix}pyresque:limit:rate-waiting:{key}"

    @property
    def rate_due(self) -> str:
        """Sorted set: ``<limit>:<window ms>:<key>`` of every rate limit with waiting jobs,
        scored by when (ms, Redis clock) its window next has room."""
        return f"{self.prefix}pyresque:limit:rate-due"

    # --- dashboard keys ------------------------------------------------------

    def web_session(self, digest: str) -> str:
        """A dashboard sign-in session (by its id's hash), expiring when idle."""
        return f"{self.prefix}pyresque:web:session:{digest}"

    @property
    def web_epoch(self) -> str:
        """Counter of "sign out everywhere": a session made before the last one is void."""
        return f"{self.prefix}pyresque:web:epoch"

    def web_failures(self, client: str) -> str:
        """Recent failed sign-ins from one client address."""
        return f"{self.prefix}pyresque:web:failures:{client}"

    def web_lockout(self, client: str) -> str:
        """Set while a client address must wait before trying to sign in again."""
        return f"{self.prefix}pyresque:web:lockout:{client}"
