#!/usr/bin/env bash
# Fails when a domain file imports a transport or SQL (Docs/architecture.md, "Layers"): Core's domain services
# know neither HTTP, gRPC nor SQL; the store's named operations own the SQL, the transports map domain errors.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^import (MusterGRPC|MusterProto|SQLKit|SQLiteKit|PostgresKit|Hummingbird[A-Za-z]*|NIO[A-Za-z]*)$'
status=0
for file in Sources/MusterCore/Domain/*.swift; do
    if grep -En "$forbidden" "$file" >/dev/null; then
        grep -En "$forbidden" "$file" | sed "s|^|$file:|" >&2
        status=1
    fi
done
if [[ $status -ne 0 ]]; then
    echo "check-layers: a domain file imports a transport or SQL (see above)" >&2
    exit 1
fi
echo "check-layers: Sources/MusterCore/Domain imports no transport and no SQL"
