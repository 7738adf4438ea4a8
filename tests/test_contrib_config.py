"""The integrations' settings reader (contrib/config.py): whatever a settings file
holds, the result is a Config or one ConfigError line naming the key."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pyresque.contrib.config import KEYS, Config, ConfigError
from pyresque.protocol.payload import Dialect

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@given(
    st.dictionaries(st.sampled_from([*KEYS, "OTHER", ""]) | st.integers(), VALUES, max_size=6)
    | VALUES
)
def test_any_settings_give_a_config_or_one_clear_error(settings: Any) -> None:
    try:
        config = Config.load(settings, "settings.PYRESQUE")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("settings.PYRESQUE ")
        assert "\n" not in message
        return
    assert isinstance(config.dialect, Dialect)
    assert isinstance(config.strict, bool)
    assert all(isinstance(app, str) and app for app in config.apps)
    assert all(isinstance(key, str) for key in config.dashboard)


def test_valid_settings_are_read() -> None:
    config = Config.load(
        {
            "REDIS_URL": "redis://h:1/2",
            "NAMESPACE": "app",
            "DIALECT": "ruby",
            "STRICT": True,
            "APPS": ["a.jobs"],
            "DASHBOARD": {"read_only": True},
        },
        "x",
    )
    expected = Config("redis://h:1/2", "app", Dialect.RUBY, True, ("a.jobs",), {"read_only": True})
    assert config == expected
    assert Config.load({}, "x") == Config()
