"""Define a job and enqueue it, the way php-resque and Ruby Resque users know.

Run it with a Redis server at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``)::

    python examples/user_job.py
"""

from __future__ import annotations

import os

from pyresque import Job, Resque

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class UserJob(Job):
    """Welcome a new user. ``self.args`` is the data given to ``enqueue``."""

    def perform(self) -> None:
        data = self.args
        print(f"Welcome, {data['name']} <{data['email']}>!")


def main(redis_url: str | None = None, namespace: str = "resque") -> str:
    """Enqueue one tracked UserJob, show the queue, and return the job id."""
    resque = Resque(redis_url or os.environ.get("REDIS_URL", DEFAULT_URL), namespace=namespace)
    job_id = resque.enqueue(
        "default", UserJob, {"name": "Chris", "email": "chris@example.com"}, track_status=True
    )
    if job_id is None:
        raise SystemExit("a before_enqueue hook refused the job")
    status = resque.status(job_id)
    print(f"Enqueued UserJob {job_id}")
    print(f"Queue size: {resque.size('default')}")
    print(f"Queues: {', '.join(resque.queues())}")
    print(f"Status: {status.name if status else 'not tracked'}")
    return job_id


if __name__ == "__main__":
    main()
