#!/usr/bin/env bash
# Scale benchmark (not a test): N pollers (default 10,000), each as muster-poller behaves (one package stream, pings
# every 20 s, a 30 s heartbeat while its stream is not live) on one release muster-core on SQLite, then on two
# replicas sharing the test PostgreSQL server. Core RSS per stream, idle CPU, database statements/s, a burst of
# agent packages (create rate beside the rate with no poller connected) and revocation arrival. Attested pollers
# are cached in .build-release/bench-scale between runs.
# Usage: scripts/bench-scale.sh [POLLERS] [BURST] [scale_bench.py options, e.g. --connecting 0 --window 120]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --scratch-path .build-release --product muster-core
bin="$(swift build -c release --scratch-path .build-release --show-bin-path)/muster-core"
pollers="${1:-10000}"
burst="${2:-$pollers}"
extra=("${@:3}")
python3 Benchmarks/scale_bench.py --bin "$bin" --cache .build-release/bench-scale --pollers "$pollers" --burst "$burst" \
    "${extra[@]}"
scripts/test-postgres.sh start
trap 'scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
python3 Benchmarks/scale_bench.py --bin "$bin" --cache .build-release/bench-scale --pollers "$pollers" --burst "$burst" \
    --postgres "postgres://postgres@127.0.0.1:${MUSTER_TEST_PG_PORT:-55432}/postgres" --replicas 2 "${extra[@]}"
