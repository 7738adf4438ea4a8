#!/usr/bin/env python
"""The Redis server's CPU per finish.lua call for a plain job (no workflow, no result,
no retry), this checkout's script against another source tree's, in interleaved rounds
on a private Redis (docs/workflows.md quotes the result).

    python benchmarks/finish_cost.py --baseline OLD/src [--calls 20000] [--rounds 12]

``--baseline`` is the ``src`` folder of another checkout (e.g. ``git archive REV src``).
Each round writes ``--calls`` in-flight records, then finishes them all with one side's
script (pipelined EVALSHA), and takes the server's ``used_cpu_user + used_cpu_sys``
(``INFO cpu``: Redis's own work, so it holds on a busy machine) around the finishes.
Prints each side's per-call figures and medians, and last ``RESULT <JSON>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import redis

from pyresque.dev.server import RedisServer
from pyresque.protocol import scripts

#: finish.lua's ARGV after the claim token (lib_finish.lua): an 'ok' job, nothing else
PLAIN = ["ok", "null", "", "0", "", "delayed:0", "", "", "", 0, "", "", ""]
KEYS = ["b:inflight", "b:stat:processed", "b:stat:processed:w"]


def _source(src: Path) -> str:
    """finish.lua with its libraries as ``src``'s scripts.py assembles it."""
    lua = src / "pyresque" / "protocol" / "lua"
    text = (src / "pyresque" / "protocol" / "scripts.py").read_text(encoding="utf-8")
    libs_line = next(line for line in text.splitlines() if line.strip().startswith('"finish":'))
    libs = json.loads("[" + libs_line.split("(", 1)[1].rsplit(")", 1)[0].rstrip(",") + "]")
    parts = [(lua / f"lib_{name}.lua").read_text(encoding="utf-8") for name in ("keys", *libs)]
    return "\n".join(["local SCRIPT = 'finish'", *parts, (lua / "finish.lua").read_text()])


def _args(source: str) -> list[object]:
    """This side's ARGV: as many empty trailing arguments as its key check reads."""
    extra = 2 if "a[16]" in source else 0
    return [*PLAIN, *([""] * extra)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout's src")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=12)
    opts = parser.parse_args()
    sides = {"baseline": _source(opts.baseline), "this": scripts.source("finish")}
    per_call: dict[str, list[float]] = {side: [] for side in sides}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        shas = {side: client.script_load(source) for side, source in sides.items()}
        args = {side: _args(source) for side, source in sides.items()}
        for round_number in range(opts.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for side in order:
                pipe = client.pipeline(transaction=False)
                for i in range(opts.calls):
                    pipe.hset(KEYS[0], f"t{i}", "record")
                pipe.execute()
                cpu = client.info("cpu")
                before = cpu["used_cpu_user"] + cpu["used_cpu_sys"]
                pipe = client.pipeline(transaction=False)
                for i in range(opts.calls):
                    pipe.evalsha(shas[side], len(KEYS), *KEYS, f"t{i}", *args[side])
                assert all(reply == 1 for reply in pipe.execute())
                cpu = client.info("cpu")
                used = cpu["used_cpu_user"] + cpu["used_cpu_sys"] - before
                per_call[side].append(used * 1e6 / opts.calls)
    medians = {side: statistics.median(values) for side, values in per_call.items()}
    for side, values in per_call.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{side}: {shown} us of Redis CPU per call (median {medians[side]:.2f})")
    print("RESULT " + json.dumps({"calls": opts.calls, "per_call": per_call, "median": medians}))


if __name__ == "__main__":
    main()
