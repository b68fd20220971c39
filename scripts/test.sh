#!/usr/bin/env bash
# Runs Muster's whole test suite: bootstrap, the house rules (swift format lint, domain imports), a throwaway
# PostgreSQL server, the Swift tests (store tests on SQLite and PostgreSQL; Core's routes in process), the black-box
# tests of Core and the interop tests against peers written by others
# (Python grpcio, openssl, tar, a NATS subscriber, the web console in Chromium with axe-core), the HTTP API against
# schemathesis, every libFuzzer target for a
# bounded time, then the bridge's tests again under the address and thread sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

echo "== house rules: swift format lint (.swift-format), domain layer imports"
# Generated protobuf Swift is left as protoc-gen-swift writes it.
mapfile -t formatted < <(find Sources Tests Fuzz -name '*.swift' -not -path 'Sources/MusterProto/*' | sort)
swift format lint --strict --configuration .swift-format "${formatted[@]}" Package.swift
scripts/check-layers.sh

echo "== PostgreSQL for the tests"
scripts/test-postgres.sh start
trap 'scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
export MUSTER_TEST_PG_PORT="${MUSTER_TEST_PG_PORT:-55432}"
export MUSTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:${MUSTER_TEST_PG_PORT}/postgres"
export MUSTER_TEST_PG_CA="${MUSTER_TEST_PGDATA:-/tmp/muster-test-pg-$MUSTER_TEST_PG_PORT}/tls/ca.pem"

echo "== swift test (debug)"
swift build --build-tests
swift test --skip-build

echo "== black-box and interop tests (Python peers, real processes)"
export MUSTER_BIN_DIR="$(swift build --show-bin-path)"
# Separate runs: each suite has its own conftest module.
python3 -m pytest -q Tests/CoreAPI
python3 -m pytest -q Tests/Interop

echo "== fuzzing (libFuzzer, ${MUSTER_FUZZ_SECONDS:-60} s a target)"
scripts/fuzz.sh "${MUSTER_FUZZ_SECONDS:-60}"

if [[ "${MUSTER_SKIP_SANITIZERS:-0}" != 1 ]]; then
    # MUSTER_BRIDGE_ONLY makes the manifest declare just the bridge and identity modules.
    export MUSTER_BRIDGE_ONLY=1
    echo "== bridge tests under AddressSanitizer"
    export LSAN_OPTIONS="suppressions=$PWD/Tests/Sanitizers/lsan.supp:print_suppressions=0"
    swift test --scratch-path .build-asan --sanitize=address --filter MusterGRPCTests
    echo "== bridge tests under ThreadSanitizer"
    export TSAN_OPTIONS="suppressions=$PWD/Tests/Sanitizers/tsan.supp:halt_on_error=1"
    swift test --scratch-path .build-tsan --sanitize=thread --filter MusterGRPCTests
fi
