"""Layer 3, middleware: what wraps a job on its way through the worker or the producer.

Retries, timeouts, unique locks, limits, history and the Resque hooks, each a link
of the chain; users add their own links. A feature that acts around a job goes here,
so the processor and the producer stay the same when features are added.

May import: ``jobs``, ``protocol`` and below.
"""
