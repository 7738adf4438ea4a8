"""The Django app: checks the ``PYRESQUE`` setting when the project starts."""

from __future__ import annotations

from django.apps import AppConfig


class PyresqueConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    name = "pyresque.contrib.django"
    label = "pyresque"
    verbose_name = "pyresque"

    def ready(self) -> None:
        from pyresque.contrib.django.producer import config

        config()  # a bad setting is an ImproperlyConfigured error now, not at first use
