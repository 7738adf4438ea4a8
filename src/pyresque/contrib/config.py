"""The settings every integration reads, from a Django ``PYRESQUE`` dict or Flask's
``PYRESQUE_*`` config keys: checked once, with one line saying what is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyresque.protocol.keys import DEFAULT_NAMESPACE
from pyresque.protocol.payload import Dialect


class ConfigError(ValueError):
    """A framework's pyresque settings are wrong; the message says which and how."""


#: The keys, their meaning and their default (see docs/integrations.md).
KEYS: dict[str, str] = {
    "REDIS_URL": "where Redis is (default: REDIS_URL or REDIS_BACKEND, else localhost)",
    "NAMESPACE": f"the key namespace (default {DEFAULT_NAMESPACE!r})",
    "DIALECT": "the payloads written: 'php' (default) or 'ruby'",
    "STRICT": "refuse to enqueue job names no job class is registered under",
    "APPS": "modules the worker and the scheduler import so that their jobs register",
    "DASHBOARD": "keyword arguments of pyresque.web.create_app for the mounted dashboard",
}


@dataclass(frozen=True)
class Config:
    redis_url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    dialect: Dialect = Dialect.PHP
    strict: bool = False
    apps: tuple[str, ...] = ()
    dashboard: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Mapping[str, Any], where: str) -> Config:
        """The settings in ``settings`` (keys of ``KEYS``); ``where`` names them in
        errors (``settings.PYRESQUE``, ``app.config['PYRESQUE_...']``)."""
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{where} must be a dict, got {type(settings).__name__}")
        unknown = sorted(repr(key) for key in set(settings) - set(KEYS))
        if unknown:
            raise ConfigError(
                f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(KEYS)}"
            )
        url = settings.get("REDIS_URL")
        namespace = settings.get("NAMESPACE", DEFAULT_NAMESPACE)
        for key, value in (("REDIS_URL", url), ("NAMESPACE", namespace)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where} {key} must be a non-empty string, got {value!r}")
        try:
            dialect = Dialect(settings.get("DIALECT", Dialect.PHP))
        except ValueError:
            raise ConfigError(
                f"{where} DIALECT must be 'php' or 'ruby', got {settings['DIALECT']!r}"
            ) from None
        strict = settings.get("STRICT", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"{where} STRICT must be True or False, got {strict!r}")
        apps = settings.get("APPS", ())
        if isinstance(apps, str) or not _strings(apps):
            raise ConfigError(f"{where} APPS must be a list of module names, got {apps!r}")
        dashboard = settings.get("DASHBOARD", {})
        if not isinstance(dashboard, Mapping) or not _strings(list(dashboard)):
            raise ConfigError(
                f"{where} DASHBOARD must be a dict of create_app() keyword arguments, "
                f"got {dashboard!r}"
            )
        return cls(url, namespace, dialect, strict, tuple(apps), dict(dashboard))


def _strings(values: object) -> bool:
    return isinstance(values, Sequence) and all(isinstance(v, str) and v for v in values)
