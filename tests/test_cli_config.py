"""Where Redis is, as every command reads it (``--redis-url``, ``REDIS_URL``,
``REDIS_BACKEND``/``REDIS_BACKEND_DB``): an unusable URL, port or database is one
line and a non-zero exit, never a traceback; ``host:port`` works everywhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from click.testing import CliRunner

from e2e_support import Procs
from pyresque.cli.main import ENV_VARS, main

#: Every command that talks to Redis, with arguments that would otherwise work.
COMMANDS = [
    ["info"],
    ["workers"],
    ["ctl", "pause", "--all"],
    ["enqueue", "default", "Job"],
    ["status", "0123456789abcdef0123456789abcdef"],
    ["failed", "list"],
    ["failed", "retry", "--all"],
    ["failed", "remove", "0"],
    ["failed", "clear"],
    ["cron", "list"],
    ["cron", "pause", "nightly"],
    ["delayed", "list"],
    ["delayed", "cancel", "--id", "x"],
    ["delayed", "enqueue-now", "--id", "x"],
    ["cron", "resume", "nightly"],
    ["failed", "ops"],
    ["failed", "resume", "x"],
    ["failed", "trim", "--keep", "10"],
    ["cancel", "0123456789abcdef0123456789abcdef"],
    ["batch", "x"],
    ["forget-idle-queues", "--idle", "60"],
    ["scheduler"],
    ["worker", "--queue", "default"],
    ["web"],
]

#: Unusable URLs and what the one line must name.
BAD_URLS = {
    "redis://127.0.0.1:notaport/0": "port 'notaport'",
    "redis://127.0.0.1:70000/0": "port '70000'",
    "redis://127.0.0.1:0": "port '0'",
    "redis://127.0.0.1:6390/-1": "database '-1'",
    "redis://127.0.0.1:6390/abc": "database 'abc'",
    "redis://127.0.0.1:6390/0?db=x": "database 'x'",
    "http://127.0.0.1:6390/0": "scheme 'http'",
    "redis://[::1/0": "cannot be parsed",
    "redis:///0": "names no host",
    "unix://": "names no socket path",
    "redis://127.0.0.1:6390/0?socket_timeout=abc": "'socket_timeout'",
}

#: The ways a URL reaches a command: (environment, options) for a URL.
FORMS: dict[str, Callable[[str], tuple[dict[str, str], list[str]]]] = {
    "--redis-url": lambda url: ({}, ["--redis-url", url]),
    "REDIS_URL": lambda url: ({"REDIS_URL": url}, []),
    "REDIS_BACKEND": lambda url: ({"REDIS_BACKEND": url}, []),
}


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """A command in this process with only ``env`` among the commands' settings."""
    clean: dict[str, str | None] = dict.fromkeys(ENV_VARS)
    clean.update(env or {})
    result = CliRunner().invoke(main, args, env=clean)
    return result.exit_code, result.output


def assert_one_line_error(code: int, out: str, expected: str) -> None:
    lines = out.strip().splitlines()
    assert code != 0, out
    assert len(lines) == 1, out
    assert lines[0].startswith("pyresque: error: "), out
    assert expected in lines[0], out
    assert "Traceback" not in out


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_an_unusable_redis_url_is_one_line_for_every_command_and_every_form(url: str) -> None:
    for i, command in enumerate(COMMANDS):
        form = list(FORMS)[i % len(FORMS)]
        env, option = FORMS[form](url)
        code, out = run([*command, *option], env)
        assert_one_line_error(code, out, BAD_URLS[url])
        assert code == 2, (command, form, out)


def db_url(redis_url: str, db: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def test_a_database_the_server_does_not_have_is_one_line_for_every_command(
    redis_url: str,
) -> None:
    url = db_url(redis_url, "99")
    for command in COMMANDS:
        code, out = run([*command, "--redis-url", url])
        assert_one_line_error(code, out, "DB index is out of range")


def test_redis_backend_db_must_be_a_database_index(redis_url: str) -> None:
    backend = redis_url.removeprefix("redis://").rsplit("/", 1)[0]  # host:port
    for db, expected in (("abc", "database 'abc'"), ("-1", "database '-1'")):
        code, out = run(["workers"], {"REDIS_BACKEND": backend, "REDIS_BACKEND_DB": db})
        assert_one_line_error(code, out, expected)
    code, out = run(["workers"], {"REDIS_BACKEND": backend, "REDIS_BACKEND_DB": "99"})
    assert_one_line_error(code, out, "DB index is out of range")


def test_host_port_works_in_every_form(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    host_port = redis_url.removeprefix("redis://").rsplit("/", 1)[0]
    db3 = redis.Redis.from_url(db_url(redis_url, "3"))
    try:
        for env, option, client in (
            ({}, ["--redis-url", host_port], redis_client),
            ({"REDIS_URL": host_port}, [], redis_client),
            ({"REDIS_BACKEND": host_port}, [], redis_client),
            ({"REDIS_BACKEND": host_port, "REDIS_BACKEND_DB": "3"}, [], db3),
        ):
            code, out = run(["enqueue", "q", "Job", "--namespace", namespace, *option], env)
            assert code == 0, out
            assert client.llen(f"{namespace}:queue:q") == 1, (env, option)
            client.delete(f"{namespace}:queue:q", f"{namespace}:queues")
    finally:
        for key in db3.scan_iter(match=f"{namespace}:*"):
            db3.delete(key)
        db3.close()


def test_worker_scheduler_and_web_processes_exit_non_zero_with_one_line(
    procs: Procs, redis_url: str, namespace: str
) -> None:
    host_port = redis_url.removeprefix("redis://").rsplit("/", 1)[0]
    cases = [
        (["worker", "--queue", "default"], {"REDIS_BACKEND": "127.0.0.1:notaport"}, "port"),
        (["scheduler"], {"REDIS_URL": db_url(redis_url, "99")}, "DB index is out of range"),
        (["web"], {"REDIS_BACKEND": host_port, "REDIS_BACKEND_DB": "abc"}, "database 'abc'"),
        (["worker", "--queue", "default", "--redis-url", "redis://h:70000"], {}, "70000"),
    ]
    started = [(procs.cli(args, namespace, env), expected) for args, env, expected in cases]
    for proc, _ in started:
        procs.expect_failure(proc)
    for proc, expected in started:
        code = proc.wait_exit(30)
        assert code == 2, proc.log()
        assert_one_line_error(code, proc.log(), expected)
