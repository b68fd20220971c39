#!/usr/bin/env bash
# Runs Muster's whole test suite: bootstrap, the Swift tests, the interop
# tests against peers written by others, then the bridge's tests again under
# the address and thread sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

echo "== swift test (debug)"
swift build --build-tests
swift test --skip-build

echo "== interop (Python grpcio peers)"
export MUSTER_BIN_DIR="$(swift build --show-bin-path)"
python3 -m pytest -q Tests/Interop

if [[ "${MUSTER_SKIP_SANITIZERS:-0}" != 1 ]]; then
    echo "== bridge tests under AddressSanitizer"
    export LSAN_OPTIONS="suppressions=$PWD/Tests/Sanitizers/lsan.supp:print_suppressions=0"
    swift test --scratch-path .build-asan --sanitize=address --filter MusterGRPCTests
    echo "== bridge tests under ThreadSanitizer"
    export TSAN_OPTIONS="suppressions=$PWD/Tests/Sanitizers/tsan.supp:halt_on_error=1"
    swift test --scratch-path .build-tsan --sanitize=thread --filter MusterGRPCTests
fi
