#!/usr/bin/env bash
# Agent join benchmark (not a test): release muster-core and muster-poller, N agents joining one poller at
# concurrency C, beside `openssl speed ecdsap256` in the same run.
# Usage: scripts/bench-join.sh [AGENTS] [CONCURRENCY] [join_bench.py flags: --cached N, --warmup W,
#        --skip-transport, --perf FILE, --perf-core FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --scratch-path .build-release --product muster-core
swift build -c release --scratch-path .build-release --product muster-poller
stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
python3 -m grpc_tools.protoc -IProtos --python_out="$stubs" --grpc_python_out="$stubs" Protos/muster/onboarding/v1/onboarding.proto
MUSTER_PROTO_STUBS="$stubs" python3 Benchmarks/join_bench.py \
    --bin-dir "$(swift build -c release --scratch-path .build-release --show-bin-path)" \
    --agents "${1:-2000}" --concurrency "${2:-32}" "${@:3}"
