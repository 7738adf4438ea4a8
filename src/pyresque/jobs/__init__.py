"""Layer 2, jobs: the job model and running one job.

``Job`` and ``@job`` with the registry that maps Resque class names to them, the
hooks and global events, running one job in this process (``perform``), and what a
job class declares: retries, unique locks, limits, payload fields. Light on purpose:
job children (executors/zygote.py) import it without the Redis client.

May import: ``protocol`` and below.
"""
