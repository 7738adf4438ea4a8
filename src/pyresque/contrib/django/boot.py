"""What a worker or scheduler started by ``manage.py pyresque`` imports first (its
first ``--app``; fork mode's zygote imports it too, so job children have it):
sets Django up, imports every installed app's ``jobs`` module so its jobs register,
and keeps jobs off stale database connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django
from django.db import close_old_connections, connections
from django.utils.module_loading import autodiscover_modules

from pyresque.jobs.events import events


class DatabaseConnections:
    """Middleware: a job starts and ends with Django's stale-connection check, as a
    request does (a worker lives longer than ``CONN_MAX_AGE``)."""

    def around_perform(self, job: Any, next: Callable[[], Any]) -> Any:
        close_old_connections()
        try:
            return next()
        finally:
            close_old_connections()


django.setup()
autodiscover_modules("jobs")
# No connection is shared with the children forked from this process.
connections.close_all()
events.add(DatabaseConnections())
