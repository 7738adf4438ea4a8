"""The peers' virtualenv: ``benchmarks/.venv-peers``, made with ``python3 -m venv``.

Everything is measured under this one interpreter: pyresque (installed editable
from this repository) and each peer, at pinned versions. Only the standard
library is used here, since this runs before the virtualenv exists.

The pins are one consistent set: arq 0.26 and later require redis-py < 6 while
the others are at home on redis-py 8, so arq is the newest release that is not
capped (0.25.0, the same worker loop). A peer that fails to install is recorded
and the run goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-peers"
STATE = VENV / "bench-setup.json"

#: Installed first; without these nothing can be measured.
BASE = ["redis==8.1.0", "hiredis==3.5.0", "matplotlib==3.11.2"]
#: peer -> its requirements (pinned). Installed together when possible, else one by one.
PEERS: dict[str, list[str]] = {
    "rq": ["rq==3.0.0"],
    "celery": ["celery[redis]==5.7.0", "kombu==5.7.0"],
    "dramatiq": ["dramatiq[redis]==2.2.1"],
    "huey": ["huey==3.5.4"],
    "arq": ["arq==0.25.0"],
    "taskiq": ["taskiq==0.13.0", "taskiq-redis==1.2.4"],
    "saq": ["saq==0.26.4"],
}
PIP_TIMEOUT = 1200


def python() -> Path:
    return VENV / "bin" / "python"


def _fingerprint() -> str:
    """Changes when the pins, the tree or its pyproject.toml (whose entry points the editable
    install copied, such as the ``pyresque`` script) change: then setup runs again."""
    project = (REPO / "pyproject.toml").read_text()
    data = json.dumps([BASE, PEERS, str(REPO), project], sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _pip(args: list[str], log: list[str]) -> tuple[bool, str]:
    argv = [str(python()), "-m", "pip", "install", "--disable-pip-version-check", *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"pip timed out after {PIP_TIMEOUT} s"
    log.append(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode == 0:
        return True, ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return False, (lines[-1] if lines else f"pip exited {proc.returncode}")[:300]


def installed() -> dict[str, str]:
    """peer -> "ok" or "failed: <reason>", as recorded by the last setup."""
    try:
        state = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}
    peers: dict[str, str] = state.get("peers", {})
    return peers


def ensure(force: bool = False) -> dict[str, str]:
    """Make (or reuse) the virtualenv; returns each peer's install status."""
    fingerprint = _fingerprint()
    if not force and python().exists():
        try:
            state = json.loads(STATE.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("fingerprint") == fingerprint:
            peers: dict[str, str] = state["peers"]
            return peers
    print(f"[setup] creating {VENV} (python3 -m venv; pip install of pinned peers)", flush=True)
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    log: list[str] = []
    ok, reason = _pip([*BASE, "-e", str(REPO)], log)
    if not ok:
        (VENV / "bench-setup.log").write_text("\n".join(log))
        raise SystemExit(f"[setup] cannot install redis/matplotlib/pyresque: {reason}")
    status: dict[str, str] = {}
    everything = [req for reqs in PEERS.values() for req in reqs]
    ok, reason = _pip([*BASE, *everything], log)
    if ok:
        status = dict.fromkeys(PEERS, "ok")
    else:
        print(f"[setup] installing the peers together failed ({reason}); one by one", flush=True)
        for peer, reqs in PEERS.items():
            ok, reason = _pip([*BASE, *reqs], log)
            status[peer] = "ok" if ok else f"failed: {reason}"
    for peer, state_text in status.items():
        print(f"[setup] {peer}: {state_text}", flush=True)
    (VENV / "bench-setup.log").write_text("\n".join(log))
    STATE.write_text(json.dumps({"fingerprint": fingerprint, "peers": status}, indent=2))
    return status


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec_in_venv(argv: list[str]) -> None:
    """Replace this process with the same script under the virtualenv's interpreter."""
    if running_in_venv():
        return
    os.execv(str(python()), [str(python()), *argv])
