#!/usr/bin/env bash
# Builds the release bundle dist/muster-VERSION-linux-ARCH.tar.gz: the four executables (release build, Swift
# runtime linked statically), the systemd units, the install scripts, the Compose files, a README, the list of
# shared libraries the executables still need from the system (DEPENDENCIES) and SHA256SUMS of every file.
#
#   scripts/release.sh [--version V] [--out DIR] [--bin-dir DIR]
#
# --bin-dir packs executables that are already built (the tests pack the debug build this way, which takes seconds
# instead of a release build's many minutes; such a bundle needs the Swift runtime of the machine that built it).
set -euo pipefail
cd "$(dirname "$0")/.."

version=""
out="dist"
bin_dir=""
prebuilt=""
while (($#)); do
    case "$1" in
    --version) version="${2:?--version needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; prebuilt=1; shift 2 ;;
    *) echo "release.sh: unknown option $1 (use --version V, --out DIR, --bin-dir DIR)" >&2; exit 2 ;;
    esac
done
if [[ -z "$version" ]]; then
    version="$(git describe --tags --always --dirty 2>/dev/null || echo 0.0.0)"
fi
[[ "$version" =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "release.sh: version '$version' has characters a file name cannot carry" >&2; exit 2; }
arch="$(uname -m)"
executables=(muster-core muster muster-poller muster-agent)

if [[ -z "$bin_dir" ]]; then
    # One product a call (SwiftPM builds only the last --product given); they share the compiled modules.
    for exe in "${executables[@]}"; do
        swift build -c release --static-swift-stdlib --scratch-path .build-release --product "$exe"
    done
    bin_dir="$(swift build -c release --scratch-path .build-release --show-bin-path)"
fi

name="muster-${version}-linux-${arch}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/systemd" "$root/compose"
for exe in "${executables[@]}"; do
    [[ -x "$bin_dir/$exe" ]] || { echo "release.sh: $bin_dir/$exe is missing; build it first" >&2; exit 1; }
    install -m 0755 "$bin_dir/$exe" "$root/bin/$exe"
    # Release executables ship without their symbol tables (a fraction of the size).
    [[ -n "$prebuilt" ]] || strip --strip-unneeded "$root/bin/$exe"
done
install -m 0644 Compose/systemd/*.service "$root/systemd/"
install -m 0755 Compose/edge-poller-install.sh Compose/edge-agent-install.sh Compose/core-install.sh "$root/"
install -m 0644 Compose/install-common.sh "$root/"
cp -R Compose/core Compose/poller Compose/agent Compose/Dockerfile "$root/compose/"
install -m 0644 Compose/README.md "$root/README.md"
printf '%s\n' "$version" > "$root/VERSION"

# The shared libraries the executables still load from the system, and the Debian packages that hold them.
{
    echo "# library  debian-package  (what the executables load from the system; checked by the install scripts)"
    for exe in "${executables[@]}"; do ldd "$root/bin/$exe"; done \
        | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u \
        | while read -r lib path; do
            package="$(dpkg-query -S "$path" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
            if [[ -z "$package" ]]; then
                real="$(readlink -f "$path")"
                package="$(dpkg-query -S "$real" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
            fi
            echo "$lib ${package:-not-from-debian}"
        done
} > "$root/DEPENDENCIES"

sums="$(cd "$root" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum)"
printf '%s\n' "$sums" > "$root/SHA256SUMS"
mkdir -p "$out"
# A bundle of prebuilt (debug) executables is for tests: compress it quickly.
level=9
[[ -n "${prebuilt:-}" ]] && level=1
tar -C "$stage" -cf - "$name" | gzip "-$level" > "$out/$name.tar.gz"
echo "$out/$name.tar.gz"
