#!/usr/bin/env bash
# Workload API benchmark (not a test): STREAMS concurrent FetchX509SVID streams on one release muster-agent,
# beside a single stream in the same run: agent memory, and renewal-to-every-stream latency (p50/p99/max).
# Usage: scripts/bench-workload.sh [STREAMS] [RENEWALS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for product in muster-core muster-poller muster-agent; do swift build -c release --product "$product"; done
MUSTER_BIN_DIR="$(swift build -c release --show-bin-path)" python3 Benchmarks/workload_bench.py \
    --streams "${1:-200}" --renewals "${2:-2}"
