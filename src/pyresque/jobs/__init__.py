"""Layer 2, jobs: the job model.

``Job`` and ``@job`` with the registry that maps Resque class names to them, the
global events, how a job ended (``Outcome``), and what a job class declares:
retries, unique locks, limits, payload fields. Light on purpose: job children
(executors/zygote.py) import the job model without the Redis client.

May import: ``protocol`` and below.
"""
