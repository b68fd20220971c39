#!/usr/bin/env bash
# Regenerates the committed Swift for every .proto under Protos/.
# Needs protoc (Debian protobuf-compiler) and protoc-gen-swift built from the
# same swift-protobuf version as Package.swift names:
#   git clone <mirror>/apple/swift-protobuf.git && cd swift-protobuf &&
#   git checkout 1.39.0 && swift build -c release --product protoc-gen-swift
# then PROTOC_GEN_SWIFT=/path/to/.build/release/protoc-gen-swift $0
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
if [[ -z "$plugin" || ! -x "$plugin" ]]; then
    echo "generate-protos: set PROTOC_GEN_SWIFT to a protoc-gen-swift binary" >&2
    exit 2
fi
out=Sources/MusterProto
rm -f "$out"/*.pb.swift
mapfile -t protos < <(cd Protos && find . -name '*.proto' | sed 's|^\./||' | sort)
protoc --plugin=protoc-gen-swift="$plugin" -I Protos \
    --swift_out="$out" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=PathToUnderscores \
    "${protos[@]}"
echo "generated: $(ls "$out" | tr '\n' ' ')"
