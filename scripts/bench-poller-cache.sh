#!/usr/bin/env bash
# Poller with a large package cache (not a test): one poller as shipped (release, Swift runtime linked statically,
# as scripts/release.sh builds it) holding 100, then 10,000 pending agent packages; its RSS (anonymous and
# file-backed parts) empty, cached, after the joins and 35 s later (the poller hands free memory back every 30 s),
# and the p50/p99 of the same joins in both runs.
# Usage: scripts/bench-poller-cache.sh [JOINS] [WARMUP] [LARGE]   (defaults 100, 300, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for product in muster-core muster-poller; do
    swift build -c release --static-swift-stdlib --scratch-path .build-release --product "$product"
done
bin_dir="$(swift build -c release --static-swift-stdlib --scratch-path .build-release --show-bin-path)"
stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
python3 -m grpc_tools.protoc -IProtos --python_out="$stubs" --grpc_python_out="$stubs" Protos/muster/onboarding/v1/onboarding.proto
joins="${1:-100}"
warmup="${2:-300}"
large="${3:-10000}"
quiet=35  # seconds after the joins for the last RSS reading: past the poller's 30 s memory return
for cached in 100 "$large"; do
    MUSTER_PROTO_STUBS="$stubs" python3 Benchmarks/join_bench.py --bin-dir "$bin_dir" --agents "$joins" --concurrency 8 \
        --cached "$cached" --warmup "$warmup" --skip-transport --quiet "$quiet" >"$stubs/$cached.json"
done
python3 - "$stubs" "$quiet" 100 "$large" <<'PY'
import json, sys
texts = [open(f"{sys.argv[1]}/{n}.json").read() for n in sys.argv[3:]]
runs = [json.loads(t[t.index("{"):]) for t in texts]  # after the lines `muster-poller install` prints
print(f"| packages cached | RSS empty (anon + file) | RSS cached | RSS after the joins | {sys.argv[2]} s later | join p50 / p99 | poller CPU per join |")
print("|---:|---|---|---|---|---|---:|")
part = lambda r: f"{r['rss']} MiB ({r['anon']} + {r['file']})"
for r in runs:
    print(f"| {r['cached']:,} | {part(r['poller_rss_mib_empty'])} | {part(r['poller_rss_mib_cached'])} | "
          f"{part(r['poller_rss_mib_after_joins'])} | {part(r['poller_rss_mib_after_quiet'])} | "
          f"{r['p50_ms']} / {r['p99_ms']} ms | {r['poller_cpu_ms_per_join']} ms |")
PY
