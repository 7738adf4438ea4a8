"""The Redis time of one heartbeat of a real worker over many queues (issue 14, §2: no
script may block Redis for more than about 1 ms).

A worker's id is Resque's ``host:pid:queues``: over 10,001 queues it is ~120 kB, and
Redis copies and hashes it each time it enters a script or a command. This starts a
private Redis server and one idle ``pyresque worker`` over N queues (no job), then logs
every command for a while (``SLOWLOG``, threshold 0) and reports the heartbeat script's
duration per call (its SHA names it), with the machine's load. The other slowest
commands of the idle worker are listed too (its claims and its wait).

Only the CLI and the scripts' SHA are used, so another tree's code can be measured:
``PYTHONPATH=/path/to/other/src python benchmarks/heartbeat_cost.py``.

    python benchmarks/heartbeat_cost.py                     # 10,001 queues, 20 s
    python benchmarks/heartbeat_cost.py --queues 1,1000,10001 --seconds 15
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time

import redis

from pyresque.dev.server import RedisServer
from pyresque.protocol import scripts

NS = "hbcost"


def measure(server: RedisServer, queues: int, seconds: float, wake: float) -> None:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    names = ",".join(f"tenant{i:05d}" for i in range(queues))
    sha = str(scripts.script("heartbeat").sha).encode()
    args = ["worker", "--redis-url", server.url, "--namespace", NS, "--queue", names]
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pyresque.cli", *args, "--mode", "inline"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 120
            while not client.scard(f"{NS}:workers"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the worker over {queues} queues did not start")
                time.sleep(0.2)
            time.sleep(2)  # past its first claims
            client.config_set("slowlog-max-len", 100_000)
            client.slowlog_reset()
            client.config_set("slowlog-log-slower-than", 0)
            _wake(client, queues, seconds, wake)
            client.config_set("slowlog-log-slower-than", 10_000)
            entries = client.slowlog_get(100_000)
        finally:
            worker.terminate()
            worker.wait(30)
    beats = [e["duration"] for e in entries if e["command"].split(b" ")[1:2] == [sha]]
    waits = [(e["duration"], _keys(e["command"])) for e in entries if e["command"][:6] == b"BLPOP "]
    others = sorted(
        ((e["duration"], e["command"][:40]) for e in entries if e["duration"] > 1000),
        reverse=True,
    )
    load = os.getloadavg()[0]
    if not beats:
        print(f"{queues} queues: no heartbeat logged in {seconds} s")
        return
    print(
        f"{queues} queues (id {len(names) // 1000} kB): {len(beats)} beats, heartbeat µs "
        f"median {statistics.median(beats):.0f}, mean {statistics.mean(beats):.0f}, "
        f"max {max(beats)}; load {load:.2f}"
    )
    if waits:
        print(
            f"  woken waits: {len(waits)} BLPOPs served, µs median "
            f"{statistics.median(d for d, _ in waits):.0f}, max {max(d for d, _ in waits)}; "
            f"keys each at most {max(k for _, k in waits)}"
        )
    for duration, command in others[:3]:
        if command.split(b" ")[1:2] != [sha]:
            print(f"  also over 1 ms: {duration} µs {command!r}")
    client.close()


def _wake(client: redis.Redis, queues: int, seconds: float, every: float) -> None:
    """Wake the idle worker ``every`` seconds (0: never), by a token on its first, middle
    or last queue in turn (as a producer's push does), so that its waits are served and
    logged."""
    ends = time.monotonic() + seconds
    for n in itertools.count():
        if time.monotonic() >= ends or not every:
            time.sleep(max(ends - time.monotonic(), 0))
            return
        client.rpush(f"{NS}:pyresque:wake:tenant{(0, queues // 2, queues - 1)[n % 3]:05d}", "1")
        time.sleep(every)


def _keys(command: bytes) -> int:
    """The keys of a logged BLPOP: SLOWLOG keeps 31 arguments and "... (N more arguments)"."""
    words = command.split(b" ")
    if words[-1] == b"arguments)":
        return 31 + int(words[-3].lstrip(b"(")) - 2
    return len(words) - 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", default="10001", help="comma-separated queue counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="per queue count")
    parser.add_argument("--wake", type=float, default=1.5, help="seconds between wake-ups, 0: none")
    opts = parser.parse_args()
    with RedisServer() as server:
        for n in opts.queues.split(","):
            measure(server, int(n), opts.seconds, opts.wake)


if __name__ == "__main__":
    main()
