#!/usr/bin/env bash
# One command for the whole benchmark: installs the peers into benchmarks/.venv-peers
# (once), starts a private redis-server, measures pyresque, its peers and the floors,
# and writes docs/benchmarks.{md,png,json}.
#
#   bash benchmarks/run.sh            # full run (3 rounds)
#   bash benchmarks/run.sh --quick    # smoke run (1 round, small sizes)
#   bash benchmarks/run.sh --help     # every option
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/bench.py" "$@"
