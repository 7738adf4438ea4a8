"""Layer 10, the ``pyresque`` command line: one module per command group.

Thin: each command parses its options and calls the client's admin API, the worker,
the scheduler, the dashboard or the dev tools.

May import: every layer below.
"""
