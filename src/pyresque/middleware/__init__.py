"""Layer 3, middleware: what wraps a job on its way through the worker or the producer.

The chain (chain.py), and retries, timeouts, unique locks, limits, history and the
Resque hooks, each a link of it; users add their own links. Running one job where
it runs is the innermost link (hooks.py). A feature that acts around a job goes
here, so the processor and the producer stay the same when features are added.

May import: ``jobs``, ``protocol`` and below.
"""
