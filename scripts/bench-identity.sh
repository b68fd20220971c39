#!/usr/bin/env bash
# Leaf SVID issuance from CSRs on one thread (CSR check + sign + PEM encode),
# beside `openssl speed ecdsap256` in the same run. An issuance costs one
# ECDSA verify (the CSR's signature) and one sign, so openssl's ceiling is
# 1 / (1/sign_rate + 1/verify_rate). swift-crypto's own rate for one verify + one sign (the library every
# issuance uses) is measured beside it. Prints a Markdown table. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-3000}"
scratch="${MUSTER_BENCH_SCRATCH:-.build-release}"
swift build -c release --scratch-path "$scratch" --product muster-bench >&2
bench="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/muster-bench"
"$bench" issuance 200 >/dev/null   # warm-up
muster=$("$bench" issuance "$count")
speed=$(openssl speed -seconds 5 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1), $NF}')
library=$("$bench" ecdsa "$count")
python3 - "$muster" "$speed" "$library" <<'PY'
import json, sys
m = json.loads(sys.argv[1]); sign, verify = map(float, sys.argv[2].split()); lib = json.loads(sys.argv[3])
ceiling = 1 / (1 / sign + 1 / verify)
print("| measure | per second (one thread) |")
print("|---|---:|")
print(f"| openssl speed ecdsap256: sign | {sign:,.0f} |")
print(f"| openssl speed ecdsap256: verify | {verify:,.0f} |")
print(f"| openssl ceiling for one sign + one verify | {ceiling:,.0f} |")
print(f"| swift-crypto P-256 verify + sign, {lib['pairs']} pairs | {lib['per_second']:,.0f} |")
print(f"| Muster leaf issuance from a CSR (check + sign + encode), {m['issued']} leaves | {m['per_second']:,.0f} |")
print(f"| Muster as a share of the openssl ceiling | {100 * m['per_second'] / ceiling:.0f} % |")
PY
# Instructions per issuance under callgrind (stable on a noisy machine), when asked: `bench-identity.sh N callgrind`.
# Valgrind 3.19 cannot read the DWARF Swift 6.3 writes, so it runs on a copy without debug info.
if [[ "${2:-}" == callgrind ]]; then
    copy="$(mktemp)"
    trap 'rm -f "$copy" "$copy.out"' EXIT
    cp "$bench" "$copy" && chmod 700 "$copy" && strip --strip-debug "$copy"
    # shellcheck disable=SC2016  # the $ is part of the Swift symbol's mangled name
    valgrind --tool=callgrind --callgrind-out-file="$copy.out" \
        --toggle-collect='$s11MusterBench17issuanceBenchmark5countySi_tKFyyKXEfU1_TA' "$copy" issuance 300 >/dev/null 2>&1
    total=$(callgrind_annotate "$copy.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "| instructions per issuance (callgrind, 300 leaves) | $((total / 300)) |"
fi
