"""Layer 9, development tools: not needed to run jobs in production.

A Redis launcher (``redis-server`` on the PATH or the bundled Valkey), the demo, and
the pytest plugin and helpers for testing jobs.

May import: ``web`` and below.
"""
