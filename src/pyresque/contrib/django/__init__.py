"""pyresque for Django (``pip install 'pyresque[django]'``).

* ``INSTALLED_APPS += ["pyresque.contrib.django"]`` and ``PYRESQUE = {"REDIS_URL": ...,
  "NAMESPACE": ..., "APPS": [...], "DASHBOARD": {...}}`` in settings (contrib/config.py
  lists the keys; a bad one stops the project at startup, saying which).
* ``get_resque()``: the project's ``Resque``. ``enqueue_on_commit(...)`` and
  ``enqueue_to_on_commit(...)`` enqueue when the current transaction commits, so a
  job never reads rows that are not committed yet, and a rolled-back one never runs.
* ``python manage.py pyresque worker|scheduler|web ...``: the ``pyresque`` commands
  with the project's settings; workers import every installed app's ``jobs`` module.
* ``path("admin/resque/", include("pyresque.contrib.django.urls"))``: the dashboard,
  for staff users only.
"""

from pyresque.contrib.django.producer import (
    config,
    enqueue_on_commit,
    enqueue_to_on_commit,
    get_resque,
)

__all__ = ["config", "enqueue_on_commit", "enqueue_to_on_commit", "get_resque"]
