"""pyresque.exceptions: the one home of the exceptions users catch, exported as before."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import redis

import pyresque
from pyresque import exceptions
from pyresque.protocol.backtrace import exception_name
from pyresque.protocol.connection import connect, ping
from pyresque.web.app import WebConfigError


def test_the_package_exports_the_very_classes_of_the_exceptions_module() -> None:
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, BaseException), name
        if name in pyresque.__all__:
            assert getattr(pyresque, name) is cls, name
    assert WebConfigError is exceptions.WebConfigError


def test_failure_records_name_exported_exceptions_by_their_public_path() -> None:
    for name in set(exceptions.__all__) & set(pyresque.__all__):
        cls = getattr(exceptions, name)
        assert cls.__module__ == "pyresque", name
        error = cls("x")
        assert exception_name(error) == f"pyresque.{name}"
        # pickled by the public path (a job's exception crossing a process)
        assert type(pickle.loads(pickle.dumps(error))) is cls


def test_redis_unavailable_is_a_redis_connection_error_raised_by_ping() -> None:
    assert issubclass(pyresque.RedisUnavailable, redis.exceptions.ConnectionError)
    client = connect("redis://127.0.0.1:1/0", retries=0)  # nothing listens on port 1
    with pytest.raises(
        pyresque.RedisUnavailable, match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0"
    ):
        ping(client)


def test_redis_unavailable_is_one_class_whichever_thread_asks_first() -> None:
    code = (
        "import threading, pyresque.exceptions as e\n"
        "seen = []\n"
        "ask = lambda: seen.append(e.RedisUnavailable)\n"
        "ts = [threading.Thread(target=ask) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert len({id(c) for c in seen}) == 1, seen\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_the_exceptions_does_not_import_the_redis_client() -> None:
    """Job children import pyresque (and so these) but must not load redis-py (zygote.py)."""
    code = (
        "import sys, pyresque, pyresque.exceptions\n"
        "from pyresque import DirtyExit, Interrupted, Retry\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
        "from pyresque.exceptions import RedisUnavailable\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
