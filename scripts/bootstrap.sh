#!/usr/bin/env bash
# Installs everything Muster's build and tests need on a fresh Debian 12
# machine. Idempotent and non-interactive; safe to run again.
set -euo pipefail

debian_packages=(
    libgrpc-dev            # gRPC core (C), the transport under our bridge
    libprotobuf-dev
    protobuf-compiler      # protoc, for regenerating committed Swift
    libssl-dev
    openssl                # an outside judge of our certificates
    pkg-config
    python3-venv
    libarchive-dev         # writes and reads package tar.gz archives
    postgresql             # a real PostgreSQL 15 server for the store tests (started by scripts/test-postgres.sh)
    nats-server            # a real NATS server for the event tests
    tar gzip               # the system tar that judges our archives
)

missing=()
for pkg in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    echo "bootstrap: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python peers written by others, used by the interop tests.
# schemathesis fuzzes the HTTP API from its OpenAPI document, which openapi-spec-validator checks.
python_packages=(grpcio grpcio-health-checking grpcio-tools pytest spiffe cryptography nats-py schemathesis openapi-spec-validator)
if ! python3 -c "import grpc, grpc_health, grpc_tools, pytest, spiffe, cryptography, nats, schemathesis, openapi_spec_validator" 2>/dev/null; then
    echo "bootstrap: installing Python packages ${python_packages[*]}"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${python_packages[@]}"
fi
echo "bootstrap: ready"
