#!/usr/bin/env bash
# Installs everything Muster's build and tests need on a fresh Debian 12
# machine. Idempotent and non-interactive; safe to run again.
set -euo pipefail

debian_packages=(
    libgrpc-dev            # gRPC core (C), the transport under our bridge
    libabsl-dev            # abseil, under gRPC core: the bridge's shim sets its mutex mode (absl/synchronization)
    libprotobuf-dev
    protobuf-compiler      # protoc, for regenerating committed Swift
    libssl-dev
    openssl                # an outside judge of our certificates
    pkg-config
    python3-venv
    libarchive-dev         # writes and reads package tar.gz archives
    libcurl4-openssl-dev   # the static Foundation of release builds (scripts/release.sh) links libcurl
    postgresql             # a real PostgreSQL 15 server for the store tests (started by scripts/test-postgres.sh)
    nats-server            # a real NATS server for the event tests
    tar gzip               # the system tar that judges our archives
    chromium chromium-driver  # a real browser (driven by selenium) for the web console tests
    fonts-dejavu-core      # a font for the browser's screenshots
    shellcheck             # lints the install scripts
    docker-compose         # validates the Compose files (`docker-compose config`; no engine runs here)
    systemd                # systemd-analyze verifies the units
    iproute2 nftables      # network namespaces and packet counters for the multi-host topology test
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
# selenium drives Chromium for the console tests; axe-selenium-python runs axe-core's accessibility rules in it.
python_packages=(grpcio grpcio-health-checking grpcio-tools pytest spiffe cryptography nats-py schemathesis openapi-spec-validator selenium axe-selenium-python)
if ! python3 -c "import grpc, grpc_health, grpc_tools, pytest, spiffe, cryptography, nats, schemathesis, openapi_spec_validator, selenium, axe_selenium_python" 2>/dev/null; then
    echo "bootstrap: installing Python packages ${python_packages[*]}"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${python_packages[@]}"
fi
# py-spiffe for a workload running as another user (nobody): /root is 0700, so that caller cannot use the
# interpreter above; Debian's python3 (also 3.11) with a copy of py-spiffe in a world-readable place can.
other_user_python=/var/lib/muster-test/python
# (-S: without Debian's own dist-packages, whose old pyOpenSSL breaks on the new cryptography.)
if ! PYTHONPATH="$other_user_python" /usr/bin/python3 -S -c "import spiffe, grpc" 2>/dev/null; then
    echo "bootstrap: installing py-spiffe for other users in $other_user_python"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$other_user_python" spiffe
    chmod -R a+rX "$other_user_python"
fi
echo "bootstrap: ready"
