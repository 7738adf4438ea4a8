"""Layer 6, executors: where and how one job runs.

Inline, threads, asyncio (in the worker's process), fork (a new child per job,
forked from the zygote) and prefork (long-lived children). A processor hands a job
to its executor; the job's code does not change between them.

May import: ``scheduling`` and below; never the worker that drives them.
"""
