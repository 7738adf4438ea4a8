"""The Redis time of each command of an idle worker over many queues (issue 14, §2: no
command or script may block Redis for more than about 1 ms).

A worker's id is Resque's ``host:pid:queues``: over 10,001 queues it is ~120 kB, and
Redis copies and hashes it each time it enters a script or a command. This starts a
private Redis server and one idle ``pyresque worker`` over N queues (no job), then logs
every command for a while (``SLOWLOG``, threshold 0) and reports, per command (a
script by its name), how many ran, the median and the slowest, and how many passed
0.5 and 1 ms, with the machine's load. A token is pushed on its first, middle or last
queue in turn, so its waits are served and its woken claims run.

Only the CLI and the scripts' sources are used, so another tree's code can be measured
in the same rounds (``--baseline /path/to/other/src``, the sides in turn).

    python benchmarks/heartbeat_cost.py                     # 10,001 queues, 20 s
    python benchmarks/heartbeat_cost.py --queues 1,10001 --seconds 15 --baseline /tmp/base/src
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from pyresque.dev.server import RedisServer

NS = "hbcost"
#: The scripts' names by SHA, printed by the measured tree's own code.
_SHAS = (
    "import json; from importlib import resources; from pyresque.protocol import scripts; "
    "names = [p.name[:-4] for p in (resources.files('pyresque.protocol') / 'lua').iterdir() "
    "if p.name.endswith('.lua') and not p.name.startswith('lib_')]; "
    "print(json.dumps({scripts.script(n).sha: n for n in names}))"
)


def measure(
    server: RedisServer,
    queues: int,
    seconds: float,
    wake: float,
    mode: str,
    src: Path | None,
    slowest: int = 0,
    extra: tuple[str, ...] = (),
) -> None:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
    shas = json.loads(
        subprocess.run(
            [sys.executable, "-c", _SHAS], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    names = ",".join(f"tenant{i:05d}" for i in range(queues))
    args = ["worker", "--redis-url", server.url, "--namespace", NS, "--queue", names]
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pyresque.cli", *args, "--mode", mode, *extra],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
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
    client.close()
    load = os.getloadavg()[0]
    print(f"{queues} queues (id {len(names) // 1000} kB, {src or 'this tree'}), load {load:.2f}:")
    by: dict[str, list[tuple[int, int]]] = {}
    for e in entries:
        words = e["command"].split(b" ")
        name = words[0].decode()
        if name in ("SLOWLOG", "CONFIG"):
            continue
        if name == "EVALSHA":
            name = shas.get(words[1].decode(), words[1][:8].decode())
        by.setdefault(name, []).append((e["duration"], _args(words)))
    for name, calls in sorted(by.items(), key=lambda kv: -max(d for d, _ in kv[1])):
        durations = [d for d, _ in calls]
        print(
            f"  {name:14s} {len(calls):5d} calls, µs median {statistics.median(durations):6.0f}, "
            f"max {max(durations):6d}, over 0.5 ms {sum(d > 500 for d in durations):3d}, "
            f"over 1 ms {sum(d > 1000 for d in durations):3d}; arguments at most "
            f"{max(a for _, a in calls)}"
        )
    if slowest:
        for e in sorted(entries, key=lambda e: -e["duration"])[:slowest]:
            print(f"    {e['duration']} µs at {e['start_time']}: {e['command'][:150]!r}")


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


def _args(words: list[bytes]) -> int:
    """The arguments of a logged command: SLOWLOG keeps 32 and "... (N more arguments)"."""
    if words[-1] == b"arguments)":
        return 31 + int(words[-3].lstrip(b"(")) - 1
    return len(words) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", default="10001", help="comma-separated queue counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="per queue count")
    parser.add_argument("--wake", type=float, default=1.5, help="seconds between wake-ups, 0: none")
    parser.add_argument("--mode", default="inline", help="the worker's mode")
    parser.add_argument("--baseline", type=Path, help="another tree's src, measured too")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--worker-args", default="", help="more worker options, e.g. --no-blocking")
    parser.add_argument(
        "--fifo",
        action="store_true",
        help="run the server SCHED_FIFO (chrt, root): what the scheduler adds is left out",
    )
    parser.add_argument("--slowest", type=int, default=0, help="list this many slowest commands")
    opts = parser.parse_args()
    sides: list[Path | None] = [None, opts.baseline.resolve()] if opts.baseline else [None]
    with RedisServer() as server:
        if opts.fifo:
            subprocess.run(["chrt", "-f", "-p", "10", str(server.pid)], check=True)
        for turn in range(opts.rounds):
            for src in sides if turn % 2 == 0 else sides[::-1]:  # neither always goes first
                for n in opts.queues.split(","):
                    measure(
                        server,
                        int(n),
                        opts.seconds,
                        opts.wake,
                        opts.mode,
                        src,
                        opts.slowest,
                        tuple(opts.worker_args.split()),
                    )


if __name__ == "__main__":
    main()
