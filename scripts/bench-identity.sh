#!/usr/bin/env bash
# Leaf SVID issuance from CSRs on one thread (CSR check + sign + PEM encode),
# beside `openssl speed ecdsap256` in the same run. An issuance costs one
# ECDSA verify (the CSR's signature) and one sign, so openssl's ceiling is
# 1 / (1/sign_rate + 1/verify_rate). Prints a Markdown table. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-3000}"
swift build -c release --product muster-bench >&2
bench="$(swift build -c release --show-bin-path)/muster-bench"
"$bench" issuance 200 >/dev/null   # warm-up
muster=$("$bench" issuance "$count")
speed=$(openssl speed -seconds 5 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1), $NF}')
python3 - "$muster" "$speed" <<'PY'
import json, sys
m = json.loads(sys.argv[1]); sign, verify = map(float, sys.argv[2].split())
ceiling = 1 / (1 / sign + 1 / verify)
print("| measure | per second (one thread) |")
print("|---|---:|")
print(f"| openssl speed ecdsap256: sign | {sign:,.0f} |")
print(f"| openssl speed ecdsap256: verify | {verify:,.0f} |")
print(f"| openssl ceiling for one sign + one verify | {ceiling:,.0f} |")
print(f"| Muster leaf issuance from a CSR (check + sign + encode), {m['issued']} leaves | {m['per_second']:,.0f} |")
print(f"| Muster as a share of the openssl ceiling | {100 * m['per_second'] / ceiling:.0f} % |")
PY
