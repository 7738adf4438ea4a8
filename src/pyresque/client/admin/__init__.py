"""The admin layer: one API over a namespace's queues, jobs, failures, workers,
delayed jobs, cron entries and stats (Sidekiq's ``api.rb`` is the model).

The CLI, the dashboard's pages and JSON API, ``/metrics`` and ``Resque``'s admin
methods all call these functions, so a fix or a feature lands once. Each takes a
``Namespace`` (a ``Resque``) and returns plain, JSON-ready data; what could not be read
is reported in ``Problems``, never raised. It may import ``protocol``, ``jobs`` and
``middleware``, never the worker, the executors, the scheduler or croniter.

``base`` (Namespace, Problems), ``items`` (one item as shown), ``queues``,
``failures``, ``workers`` (and their commands), ``delayed``, ``cron``, ``stats``;
``methods`` gives ``Resque`` its admin methods.
"""
