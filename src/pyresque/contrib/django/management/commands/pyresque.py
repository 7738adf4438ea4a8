"""``python manage.py pyresque COMMAND ...``: the ``pyresque`` command line (worker,
scheduler, web, and the rest) with the project's settings. Workers and schedulers
import ``pyresque.contrib.django.boot`` first (Django set up, every app's ``jobs``
module imported), then the ``APPS`` of ``settings.PYRESQUE``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pyresque.contrib import commands
from pyresque.contrib.django.producer import config

BOOT = "pyresque.contrib.django.boot"


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Run a pyresque command (worker, scheduler, web, ...) with this project's settings."

    def run_from_argv(self, argv: list[str]) -> None:
        # Every argument is the pyresque command's (its own --help included).
        commands.run(argv[2:], config(), [BOOT], prog=f"{Path(argv[0]).name} {argv[1]}")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs="*", help="the pyresque command and its options")

    def handle(self, *args: str, **options: Any) -> None:
        commands.run(args, config(), [BOOT], prog="pyresque")
