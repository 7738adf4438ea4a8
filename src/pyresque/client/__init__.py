"""Layer 4, the client: the producer (``Resque``) and the admin API.

Enqueueing and the checks made before anything is written, removing queued jobs,
and the one admin API (queues, failures, workers, schedules, stats) that the CLI,
the dashboard and /metrics all use, so a fix lands once for all of them.

May import: ``middleware``, ``jobs``, ``protocol`` and below. Never the worker or the
executors: a producer or a dashboard does not load them.
"""
