"""The server the suite runs on is one the README supports, and the one CI asked for:
``.ci/run`` runs a subset again with ``PYRESQUE_REDIS_SERVER`` pointing at the Valkey
of the ``embedded`` extra and ``PYRESQUE_EXPECT_SERVER=valkey``.
"""

from __future__ import annotations

import os

import redis

#: The oldest versions supported (README, docs/production.md).
SUPPORTED = {"redis": (7, 0), "valkey": (7, 2)}


def test_the_session_server_is_supported_and_the_expected_one(redis_client: redis.Redis) -> None:
    info = redis_client.info("server")
    name = "valkey" if "valkey_version" in info else "redis"
    version = str(info.get(f"{name}_version"))
    assert tuple(map(int, version.split(".")[:2])) >= SUPPORTED[name], f"{name} {version}"
    expected = os.environ.get("PYRESQUE_EXPECT_SERVER")
    if expected:
        assert name == expected, f"asked for {expected}, ran on {name} {version}"
