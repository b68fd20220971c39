#!/usr/bin/env bash
# Flood benchmark (not a test): a release muster-core on SQLite; create latency idle and while anonymous callers send
# bad attestations, with the refusal-audit budget and without it, side by side; audit rows written.
# Usage: scripts/bench-flood.sh [ATTEMPTS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product muster-core
python3 Benchmarks/flood_bench.py --bin "$(swift build -c release --show-bin-path)/muster-core" --attempts "${1:-20000}"
