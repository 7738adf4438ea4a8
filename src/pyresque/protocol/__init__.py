"""Layer 1, the protocol: what Resque keeps in Redis and how it is read and changed.

Keys, payloads, job status, failure records, counters, delayed jobs as
resque-scheduler stores them, claims and unique locks as Redis holds them, the
``pyresque ctl`` commands, the Lua scripts (``lua/``) that make each step atomic, and
the connection with its outage backoff. Everything another Resque (Ruby, PHP) must
agree with is here, so wire compatibility is checked in one folder.

May import: ``pyresque.exceptions``, ``pyresque.version`` and itself; nothing above
(tests/test_layers.py holds the order).
"""
