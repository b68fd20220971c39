#!/usr/bin/env bash
# The bridge benchmark: unary 64-byte echo over mTLS at concurrency 1, 4 and 16,
# against Muster's Swift server, a C++ server on the same libgrpc, and
# grpc-swift-2, all driven by the same C++ load client in one run.
# Prints a Markdown table (QPS, p50, p99), then the server's CPU time per call on one warm channel, then one for
# a new connection per call
# (calls/s and server CPU per call, Python grpcio client). Not part of CI.
# Usage: scripts/bench-grpc.sh [MEASURE_SECONDS] [handshake|health]   ("handshake": only the last table; "health":
# only grpc.health.v1.Health/Check at concurrency 1, 4 and 16 against Muster's server and a plain C server on gRPC
# core's C API, Benchmarks/c/health_server.c, the same load client for both)
# Env: MUSTER_BENCH_SERVERS (default "muster c++ grpc-swift-2"; "before" is the muster-grpc-demo binary at
# MUSTER_BENCH_BEFORE, an earlier build, for a before/after in one run), MUSTER_BENCH_SCRATCH (Muster's release
# build directory, default .build-release; the one `swift build -c release --scratch-path` the other benches use).
set -euo pipefail
cd "$(dirname "$0")/.."
measure="${1:-8}"
only="${2:-}"
warmup=2
work=.build-bench
mkdir -p "$work/cpp"

scripts/bootstrap.sh >/dev/null
missing=()
for pkg in libgrpc++-dev protobuf-compiler-grpc g++; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "building the C++ server and load client…" >&2
protoc -I Protos --cpp_out="$work/cpp" --grpc_out="$work/cpp" \
    --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" muster/testing/v1/echo.proto grpc/health/v1/health.proto
# g++ takes pkg-config's long list fine (only SwiftPM's linker line overflows); drop repeats.
cxx_libs="$(pkg-config --libs grpc++ protobuf | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ') -labsl_synchronization -lpthread"
# shellcheck disable=SC2086 # pkg-config's flags are words
for program in echo_server load_client; do
    g++ -O2 -std=c++17 -I "$work/cpp" "Benchmarks/cpp/$program.cc" \
        "$work/cpp/muster/testing/v1/echo.pb.cc" "$work/cpp/muster/testing/v1/echo.grpc.pb.cc" \
        "$work/cpp/grpc/health/v1/health.pb.cc" "$work/cpp/grpc/health/v1/health.grpc.pb.cc" \
        -o "$work/$program" $cxx_libs
done
# shellcheck disable=SC2046 # pkg-config's flags are words
gcc -O2 -std=c11 Benchmarks/c/health_server.c -o "$work/health_server" $(pkg-config --cflags --libs grpc)
echo "building Muster's demo server (release)…" >&2
scratch="${MUSTER_BENCH_SCRATCH:-.build-release}"
swift build -c release --scratch-path "$scratch" --product muster-grpc-demo >&2
muster_bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/muster-grpc-demo"
servers="${MUSTER_BENCH_SERVERS:-muster c++ grpc-swift-2}"
if [[ "$only" != handshake && "$only" != health && "$servers" == *grpc-swift-2* ]]; then
    echo "building the grpc-swift-2 server (release)…" >&2
    (cd Benchmarks/GRPCSwift2Echo && swift build -c release --scratch-path ../../$work/gs2 >&2)
fi
gs2_bin="$work/gs2/release/GRPCSwift2Echo"

pki="$work/pki"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

start_server() { # name port
    case "$1" in
        before) "$MUSTER_BENCH_BEFORE" serve --data-dir "$pki" --listen "127.0.0.1:$2" --trust-domain bench.muster.local >/dev/null 2>&1 & ;;
        muster) "$muster_bin" serve --data-dir "$pki" --listen "127.0.0.1:$2" --trust-domain bench.muster.local >/dev/null 2>&1 & ;;
        c++) "$work/echo_server" "$2" "$pki/server/svid.pem" "$pki/server/svid.key" "$pki/bundle.pem" >/dev/null 2>&1 & ;;
        grpc-swift-2) "$gs2_bin" "$2" "$pki/server/svid.pem" "$pki/server/svid.key" "$pki/bundle.pem" >/dev/null 2>&1 & ;;
        c-core) "$work/health_server" "$2" "$pki/server/svid.pem" "$pki/server/svid.key" "$pki/bundle.pem" >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    wait_port "$2"
}

# Create the PKI (CA, server and client SVIDs) once, with Muster's own CA.
port=$(free_port); start_server muster "$port"; kill "$server_pid"; wait "$server_pid" 2>/dev/null || true

if [[ "$only" == health ]]; then
    echo "| server (Health/Check) | concurrency | QPS | p50 (µs) | p99 (µs) | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    for concurrency in 1 4 16; do
        for server in muster c-core; do
            port=$(free_port)
            start_server "$server" "$port"
            result=$("$work/load_client" "127.0.0.1:$port" "$pki/bundle.pem" "$pki/client/svid.pem" "$pki/client/svid.key" \
                "$concurrency" "$warmup" "$measure" health)
            kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
            python3 -c 'import json, sys; r = json.loads(sys.argv[3]); print("| %s | %s | %.0f | %.0f | %.0f | %d |" % (sys.argv[1], sys.argv[2], r["qps"], r["p50_us"], r["p99_us"], r["errors"]))' \
                "$server" "$concurrency" "$result"
        done
    done
    exit 0
fi

echo "| server | concurrency | QPS | p50 (µs) | p99 (µs) | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for concurrency in $([[ "$only" == handshake ]] || echo 1 4 16); do
    for server in $servers; do
        port=$(free_port)
        start_server "$server" "$port"
        result=$("$work/load_client" "127.0.0.1:$port" "$pki/bundle.pem" "$pki/client/svid.pem" "$pki/client/svid.key" \
            "$concurrency" "$warmup" "$measure")
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
        python3 -c 'import json, sys; r = json.loads(sys.argv[3]); print("| %s | %s | %.0f | %.0f | %.0f | %d |" % (sys.argv[1], sys.argv[2], r["qps"], r["p50_us"], r["p99_us"], r["errors"]))' \
            "$server" "$concurrency" "$result"
    done
done

# Per-call cost on one warm channel: sequential calls, the server's CPU time per call from /proc (steadier than
# QPS on a shared machine; no hardware instruction counter here, and valgrind 3.19 fails on these servers).
stubs="$work/py"
mkdir -p "$stubs"
python3 -m grpc_tools.protoc -I Protos --python_out="$stubs" --grpc_python_out="$stubs" muster/testing/v1/echo.proto
if [[ "$only" != handshake ]]; then
    echo
    echo "| server | one warm channel, sequential calls: server CPU per call (µs) |"
    echo "|---|---:|"
    for server in $servers; do
        [[ "$server" == grpc-swift-2 ]] && continue
        port=$(free_port)
        start_server "$server" "$port"
        result=$(PYTHONPATH="$stubs" python3 Benchmarks/call_cpu.py "127.0.0.1:$port" "$pki/bundle.pem" \
            "$pki/client/svid.pem" "$pki/client/svid.key" "$server_pid" 20000)
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
        python3 -c 'import json, sys; r = json.loads(sys.argv[2]); print("| %s | %.1f |" % (sys.argv[1], r["server_cpu_us_per_call"]))' \
            "$server" "$result"
    done
fi

# Connection setup: every call on a new mTLS connection (agents that each join once), Python grpcio client,
# the server's CPU time per call from /proc. Shows what the bridge adds to gRPC core's handshake path.
echo
echo "| server | new connection per call: calls/s | server CPU per call (ms) | errors |"
echo "|---|---:|---:|---:|"
for server in muster c++; do
    port=$(free_port)
    start_server "$server" "$port"
    result=$(PYTHONPATH="$stubs" python3 Benchmarks/handshake_client.py "127.0.0.1:$port" "$pki/bundle.pem" \
        "$pki/client/svid.pem" "$pki/client/svid.key" "$server_pid" 2000 32)
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    python3 -c 'import json, sys; r = json.loads(sys.argv[2]); print("| %s | %.0f | %.3f | %d |" % (sys.argv[1], r["calls_per_s"], r["server_cpu_ms_per_call"], r["errors"]))' \
        "$server" "$result"
done
