#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (address sanitizer on) and runs each for a bounded time, two at a time,
# from the seed corpus in Fuzz/corpus/TARGET; first it replays every kept crash input in Fuzz/regressions/TARGET,
# which must no longer crash. New corpus entries go to a scratch directory, never into the repository.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
TARGETS=(FuzzArchive FuzzCSR FuzzSPIFFEID FuzzBundle FuzzManifest FuzzRequests)
export MUSTER_FUZZ=1
for target in "${TARGETS[@]}"; do
    if ! swift build --scratch-path .build-fuzz --sanitize=fuzzer --sanitize=address --product "$target" >/tmp/muster-fuzz-build.log 2>&1; then
        grep -E "error" -A3 /tmp/muster-fuzz-build.log | head -40
        echo "fuzz: cannot build $target"
        exit 1
    fi
done
BIN="$(swift build --scratch-path .build-fuzz --sanitize=fuzzer --sanitize=address --show-bin-path)"
WORK="$(mktemp -d /tmp/muster-fuzz-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

for target in "${TARGETS[@]}"; do
    if compgen -G "Fuzz/regressions/$target/*" >/dev/null; then
        echo "== $target: replaying $(ls "Fuzz/regressions/$target" | wc -l) kept crash input(s)"
        "$BIN/$target" -runs=0 Fuzz/regressions/"$target"/* >"$WORK/$target.replay.log" 2>&1 \
            || { tail -30 "$WORK/$target.replay.log"; echo "fuzz: $target crashes on a kept regression input"; exit 1; }
    fi
done

run() {
    local target="$1"
    mkdir -p "$WORK/$target" "$WORK/$target.crashes"
    if "$BIN/$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$WORK/$target.crashes/" "$WORK/$target" "Fuzz/corpus/$target" >"$WORK/$target.log" 2>&1; then
        echo "== $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/$target.log" | grep -o '[0-9]*$') runs in ${SECONDS_EACH} s, no crash"
    else
        tail -40 "$WORK/$target.log"
        echo "fuzz: $target crashed; the input is $(ls "$WORK/$target.crashes"/* 2>/dev/null | head -1) (keep it in Fuzz/regressions/$target)"
        return 1
    fi
}

status=0
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
    pids=()
    for target in "${TARGETS[@]:i:2}"; do run "$target" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
done
exit $status
