#!/usr/bin/env python3
"""Benchmark pyresque against its peers and against the physical floors, in one run.

    bash benchmarks/run.sh                # full run: 3 rounds (~15 min on 2 cores)
    bash benchmarks/run.sh --quick        # smoke run: 1 round, small sizes (~4 min)
    python3 benchmarks/bench.py --rounds 5 --systems pyresque,rq

What it does:

1. makes ``benchmarks/.venv-peers`` once (venv_setup.py: pinned rq, celery,
   dramatiq, huey, arq, taskiq + taskiq-redis, saq, redis-py, matplotlib and
   pyresque itself, editable) and re-runs itself under that interpreter;
2. starts a private redis-server on a free port (``pyresque.server.RedisServer``);
3. asks each system for its version, modes and worker commands;
4. runs the rounds: every workload measures every system/mode, in an order that
   rotates from round to round, each measurement in a fresh process
   (measure.py) with a time limit, after which anything it left is killed;
   floors are measured inside each round next to the workloads they bound;
5. writes docs/benchmarks.json (raw, after every round), docs/benchmarks.md and
   docs/benchmarks.png (report.py).

``--baseline REF`` adds the system ``pyresque@REF``: pyresque as of commit REF
(its ``src`` extracted once under benchmarks/.baseline/), measured in every
workload and mode next to this tree's, and a before/after table in the report.

A system that fails to install, start or finish is reported as "failed: <why>".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import venv_setup  # noqa: E402  (stdlib only: runs before the virtualenv exists)
from systems import BASELINE_VAR, baseline_src, pythonpath  # noqa: E402  (stdlib only)

DOCS = REPO / "docs"
RUNS = HERE / ".runs"

#: workload -> floors measured right before it in each round
FLOORS_BEFORE = {
    "enqueue": ["lpush"],
    "bulk": ["lpush_pipelined"],
    "drain": ["brpop", "fork", "fork_bare"],
    "pickup": ["pickup"],
}
WORKLOADS = ["enqueue", "bulk", "drain", "pickup", "io", "proxy_drain", "proxy_io"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pyresque vs peers vs floors", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, small sizes: a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument("--systems", help="comma-separated subset, e.g. pyresque,rq")
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument(
        "--baseline", metavar="REF", help="also measure pyresque as of this git commit/branch"
    )
    parser.add_argument("--delay-ms", type=float, default=0.5, help="proxy delay each way")
    parser.add_argument("--setup-only", action="store_true", help="make the virtualenv and stop")
    parser.add_argument("--reinstall", action="store_true", help="re-run the pip installs")
    parser.add_argument(
        "--output", default=str(DOCS), help="directory for benchmarks.{md,json,png}"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite md/png from the existing JSON"
    )
    return parser.parse_args(argv)


class Settings:
    """Sizes and time limits of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        self.rounds = args.rounds or (1 if args.quick else 3)
        self.window = 0.6 if args.quick else 0.8  # seconds of jobs timed per drain
        self.window_max = self.window * 2  # a slower system is timed for this long
        self.rate_seconds = 0.5 if args.quick else 1.0  # per enqueue/floor measurement
        self.samples = 40 if args.quick else 200  # pickup latency samples
        self.pickup_budget = 3.0 if args.quick else 6.0
        self.startup_timeout = 40.0
        self.delay_ms = args.delay_ms
        self.io_concurrency = 10


# --- machine ------------------------------------------------------------------------


def machine_facts(redis_binary: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    banner = subprocess.run(
        [redis_binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": banner,
        "loadavg_start": os.getloadavg(),
    }


# --- running measurements -------------------------------------------------------------


class Runner:
    """Runs measure.py once per measurement, with a time limit, and cleans up after it."""

    def __init__(self, url: str, run_dir: Path, baseline: dict[str, str] | None) -> None:
        self.url = url
        self.run_dir = run_dir
        self.baseline = baseline
        self.count = 0

    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        import harness

        self.count += 1
        mark = f"{self.run_dir.name}-{self.count}"
        label = "-".join(
            str(spec.get(k)) for k in ("action", "system", "mode", "workers") if spec.get(k)
        )
        spec = {**spec, "log": str(self.run_dir / f"{self.count:04d}-{label}.log")}
        fd, results = tempfile.mkstemp(prefix="bench-results-")  # the jobs' records (jobutil)
        os.close(fd)
        env = dict(os.environ)
        if self.baseline and spec.get("system") == self.baseline["system"]:
            env[BASELINE_VAR] = self.baseline["commit"]
        env.update(
            BENCH_MARK=mark,
            BENCH_DIRECT_URL=self.url,
            BENCH_REDIS_URL=self.url,
            BENCH_RESULTS_FILE=results,
            PYTHONPATH=pythonpath(env),
        )
        argv = [sys.executable, str(HERE / "measure.py"), json.dumps(spec)]
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"error": f"timed out after {timeout:.0f} s"}
        finally:
            harness.kill_marked(mark)
            os.unlink(results)
        for line in reversed(out.decode(errors="replace").splitlines()):
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                return result
        tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
        return {"error": f"measure.py exited {proc.returncode}: {tail[:400]}"}


def baseline_checkout(ref: str) -> dict[str, str]:
    """Resolve ``ref`` and extract its ``src`` (once per commit) for ``pyresque@REF``."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    src = baseline_src(commit)
    if not src.is_dir():
        src.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
            tar = Path(tmp) / "src.tar"
            subprocess.run(
                ["git", "-C", str(REPO), "archive", "--output", str(tar), commit, "src"],
                check=True,
            )
            subprocess.run(["tar", "-xf", str(tar), "-C", tmp], check=True)
            (Path(tmp) / "src").rename(src)
    head = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=10"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"[baseline] pyresque@{ref} is {commit[:10]}, from {src}; this tree: {head}", flush=True)
    return {"ref": ref, "commit": commit, "system": f"pyresque@{ref}", "head": head}


def probe_systems(runner: Runner, names: list[str], installed: dict[str, str]) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name in names:
        mine = name.partition("@")[0] == "pyresque"  # this tree's or a baseline's
        status = "ok" if mine else installed.get(name, "failed: not installed")
        if status != "ok":
            systems[name] = {"status": status, "modes": []}
            continue
        result = runner.run({"action": "probe", "system": name}, timeout=120)
        if "error" in result:
            systems[name] = {"status": f"failed: {result['error']}", "modes": []}
        else:
            systems[name] = {"status": "ok", **result}
        print(f"[probe] {name}: {systems[name].get('version', '')} {systems[name]['status']}")
    return systems


# --- the plan -----------------------------------------------------------------------


def configs(
    workload: str, systems: dict[str, Any], settings: Settings
) -> list[tuple[str, str, int, int | None]]:
    """(system, mode, workers, concurrency) for every measurement of ``workload``."""
    found: list[tuple[str, str, int, int | None]] = []
    for name, info in systems.items():
        if info["status"] != "ok":
            continue
        if workload in ("enqueue", "bulk"):
            if workload == "bulk" and not info.get("has_bulk"):
                continue
            found.append((name, info["modes"][0]["name"], 1, None))
            continue
        for mode in info["modes"]:
            if workload not in mode["workloads"]:
                continue
            if workload == "drain":
                found += [(name, mode["name"], 1, None), (name, mode["name"], 2, None)]
            elif workload in ("io", "proxy_io"):
                found.append((name, mode["name"], 1, mode["io_concurrency"]))
            else:
                found.append((name, mode["name"], 1, None))
    return found


def paired(
    plan: list[tuple[str, str, int, int | None]],
) -> list[tuple[str, str, int, int | None]]:
    """Each ``pyresque@REF`` measurement right after pyresque's same one: both meet the
    same machine, since the ratio between them is the point."""
    twin = {config[1:]: i for i, config in enumerate(plan) if config[0] == "pyresque"}

    def place(item: tuple[int, tuple[str, str, int, int | None]]) -> tuple[int, int]:
        index, config = item
        if config[0].startswith("pyresque@") and config[1:] in twin:
            return twin[config[1:]], 1
        return index, 0

    return [config for _, config in sorted(enumerate(plan), key=place)]


def rotated(items: list[Any], round_index: int) -> list[Any]:
    """Alternate the order between rounds: rotate, and reverse every other round."""
    if not items:
        return items
    shift = round_index * max(1, len(items) // 3) % len(items)
    order = items[shift:] + items[:shift]
    return order[::-1] if round_index % 2 else order


def sized(previous: float | None, target_s: float, default: int, low: int, high: int) -> int:
    """How many jobs make about ``target_s`` seconds, from the last round's rate."""
    wanted = default if previous is None else previous * target_s
    return int(min(high, max(low, wanted)))


class Run:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.output = Path(args.output)
        self.rates: dict[tuple[Any, ...], float] = {}
        self.data: dict[str, Any] = {}

    def key(self, workload: str, system: str, mode: str, workers: int) -> tuple[Any, ...]:
        return (workload, system, mode, workers)

    def measure(
        self,
        runner: Runner,
        round_index: int,
        workload: str,
        system: str,
        mode: str,
        workers: int,
        concurrency: int | None,
    ) -> None:
        s = self.settings
        key = self.key(workload, system, mode, workers)
        previous = self.rates.get(key)
        spec: dict[str, Any] = {
            "system": system,
            "mode": mode,
            "workers": workers,
            "concurrency": concurrency,
            "startup_timeout": s.startup_timeout,
            "window_max": s.window_max,
        }
        timeout = 60.0
        if workload == "floor":
            defaults = {"brpop": 3000, "lpush": 3000, "lpush_pipelined": 20000}
            n = sized(previous, s.rate_seconds, defaults.get(mode, 150), 50, 200000)
            spec.update(action="floor", n=s.samples if mode == "pickup" else n)
        elif workload in ("enqueue", "bulk"):
            spec.update(
                action=workload,
                n=sized(
                    previous, s.rate_seconds, 1000 if workload == "enqueue" else 5000, 200, 100000
                ),
            )
        elif workload in ("drain", "io", "proxy_drain", "proxy_io"):
            info = next(m for m in self.data["systems"][system]["modes"] if m["name"] == mode)
            # The speed hints are for a quiet machine: scale them by how this one does.
            brpop = self.rates.get(self.key("floor", "floor", "brpop", 1))
            machine = min(1.0, max(0.1, brpop / 10000)) if brpop else 1.0
            slowdown = 0.3 if workload.startswith("proxy") else 1.0
            default = int(info["speed"] * s.window * machine * slowdown)
            if workload.endswith("io"):
                default = int(80 * (concurrency or 1) * s.window)
            n = sized(previous, s.window, default, 60, 50000)
            spec.update(action="io" if workload.endswith("io") else "drain", n=n)
            if workload.startswith("proxy"):
                spec["delay_ms"] = s.delay_ms
            timeout = s.startup_timeout + s.window_max + 90
        elif workload == "pickup":
            spec.update(
                action="pickup",
                samples=s.samples,
                budget=s.pickup_budget,
                sample_timeout=5.0,
            )
            timeout = s.startup_timeout + s.pickup_budget + 60
        started = time.time()
        result = runner.run(spec, timeout)
        elapsed = time.time() - started
        if "rate" in result:
            self.rates[key] = result["rate"]
        self.data["measurements"].append(
            {
                "round": round_index,
                "workload": workload,
                "system": system,
                "mode": mode,
                "workers": workers,
                "concurrency": concurrency,
                "at": started,
                "elapsed": round(elapsed, 2),
                "result": result,
            }
        )
        shown = (
            f"{result['rate']:.0f}/s" + (" (partial)" if result.get("partial") else "")
            if "rate" in result
            else f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms"
            if "p50_ms" in result
            else result.get("skipped") or result.get("error", "?")
        )
        where = f"{system} {mode}" + (f" x{workers}" if workers > 1 else "")
        print(
            f"[r{round_index + 1} {workload:11}] {where:26} {shown}  ({elapsed:.1f} s)", flush=True
        )

    def save(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "benchmarks.json").write_text(json.dumps(self.data, indent=1))

    def go(self) -> None:
        from pyresque.dev.server import RedisServer

        s = self.settings
        installed = venv_setup.installed()
        names = ["pyresque", *venv_setup.PEERS]
        if self.args.systems:
            wanted = {n.strip() for n in self.args.systems.split(",")}
            names = [n for n in names if n in wanted]
        baseline = baseline_checkout(self.args.baseline) if self.args.baseline else None
        if baseline:  # next to pyresque (always first when measured)
            names.insert(1 if "pyresque" in names else 0, baseline["system"])
        workloads = WORKLOADS
        if self.args.workloads:
            wanted = {w.strip() for w in self.args.workloads.split(",")}
            workloads = [w for w in WORKLOADS if w in wanted]
        run_dir = RUNS / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir.mkdir(parents=True, exist_ok=True)
        for old in sorted(RUNS.iterdir())[:-3]:  # keep the logs of the last three runs
            shutil.rmtree(old, ignore_errors=True)
        with RedisServer() as server:
            runner = Runner(server.url, run_dir, baseline)
            print(f"[redis] {server.binary} at {server.url}; logs in {run_dir}", flush=True)
            command = "bash benchmarks/run.sh " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            self.data = {
                "meta": {
                    "command": command.strip(),
                    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "rounds": s.rounds,
                    "quick": s.quick,
                    "window_s": s.window,
                    "delay_ms_each_way": s.delay_ms,
                    "io_concurrency": s.io_concurrency,
                    "pickup_samples": s.samples,
                    "machine": machine_facts(server.binary or "redis-server"),
                    "installed": installed,
                    **({"baseline": baseline} if baseline else {}),
                },
                "systems": probe_systems(runner, names, installed),
                "measurements": [],
            }
            began = time.time()
            for round_index in range(s.rounds):
                for workload in workloads:
                    for floor in FLOORS_BEFORE.get(workload, []):
                        self.measure(runner, round_index, "floor", "floor", floor, 1, None)
                    plan = configs(workload, self.data["systems"], s)
                    for system, mode, workers, concurrency in rotated(paired(plan), round_index):
                        self.measure(
                            runner, round_index, workload, system, mode, workers, concurrency
                        )
                self.data["meta"]["elapsed_s"] = round(time.time() - began)
                self.save()
                print(f"[round {round_index + 1}] done after {time.time() - began:.0f} s")
        self.data["meta"]["finished"] = (
            datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        )
        self.data["meta"]["machine"]["loadavg_end"] = os.getloadavg()
        self.save()


def main() -> None:
    args = parse_args(sys.argv[1:])
    if not venv_setup.running_in_venv():
        if not args.report_only:
            venv_setup.ensure(force=args.reinstall)
            if args.setup_only:
                return
        venv_setup.reexec_in_venv([str(Path(__file__).resolve()), *sys.argv[1:]])
    import report

    output = Path(args.output)
    if not args.report_only and not args.setup_only:
        Run(args, Settings(args)).go()
    report.write(output / "benchmarks.json", output)
    print(f"[report] {output / 'benchmarks.md'} and {output / 'benchmarks.png'}")


if __name__ == "__main__":
    main()
