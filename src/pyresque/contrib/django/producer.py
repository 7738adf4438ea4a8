"""The project's producer, from ``settings.PYRESQUE``, and enqueueing on commit."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction

from pyresque.client.checks import check_job, check_queue, wire
from pyresque.client.resque import Resque
from pyresque.contrib.config import Config, ConfigError
from pyresque.jobs.job import JobRef
from pyresque.protocol.payload import dumps

_lock = threading.Lock()
_resque: Resque | None = None


def config() -> Config:
    """``settings.PYRESQUE``, checked (``ImproperlyConfigured`` saying what is wrong)."""
    try:
        return Config.load(getattr(settings, "PYRESQUE", {}), "settings.PYRESQUE")
    except ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def get_resque() -> Resque:
    """The project's ``Resque`` (one per process, made on first use)."""
    global _resque
    with _lock:
        if _resque is None:
            found = config()
            _resque = Resque(
                found.redis_url, found.namespace, dialect=found.dialect, strict=found.strict
            )
        return _resque


def _forget(setting: str, **_: Any) -> None:
    """Settings changed (tests' ``override_settings``): make the producer again."""
    global _resque
    if setting == "PYRESQUE":
        with _lock:
            _resque = None


setting_changed.connect(_forget, dispatch_uid="pyresque.contrib.django.producer")


def enqueue_on_commit(
    queue: str, job: JobRef, args: Any = None, *, using: str | None = None, **options: Any
) -> None:
    """``Resque.enqueue`` once the transaction of database ``using`` commits (at once
    outside a transaction; never if it rolls back). The job id is not known until
    then: track it from the job, or call ``get_resque().enqueue`` in your own
    ``transaction.on_commit`` callback."""
    _check(queue, job, [args])
    transaction.on_commit(lambda: get_resque().enqueue(queue, job, args, **options), using)


def enqueue_to_on_commit(
    queue: str, job: JobRef, *args: Any, using: str | None = None, **options: Any
) -> None:
    """``Resque.enqueue_to`` (positional ``args``) once the transaction commits."""
    _check(queue, job, list(args))
    transaction.on_commit(lambda: get_resque().enqueue_to(queue, job, *args, **options), using)


def _check(queue: str, job: JobRef, args: list[Any]) -> None:
    """Refuse now, in the request, what ``enqueue`` would refuse after the commit
    (where an error would surface after the data is committed)."""
    check_queue(queue)
    check_job(job)
    wire(dumps(args))
