#!/usr/bin/env bash
# Installs a Muster poller on this edge host from its package, in one command:
#
#   edge-poller-install.sh --package edge-site-x.tar.gz [--bundle DIR] [--prefix DIR] [--listen ADDR]
#                          [--advertise ADDR] [--no-start] [--replace] [--root DIR]
#
# Checks the bundle's checksums, the system libraries and the package before it writes anything; then creates the
# muster user, installs the executables and the systemd unit, puts the package in /var/lib/muster-poller, starts
# the poller and waits until it has attested to Core. Running it again with the same package changes nothing.
# Docs/installer-guide.md lists every message and what to do.
set -euo pipefail
PROGRAM="edge-poller-install.sh"
# shellcheck source=SCRIPTDIR/install-common.sh
source "$(dirname "$0")/install-common.sh"

package=""
listen="0.0.0.0:50052"
advertise=""
while (($#)); do
    common_option "$@"
    if ((USED)); then shift "$USED"; continue; fi
    case "$1" in
    --package) package="${2:?--package needs a file}"; shift 2 ;;
    --listen) listen="${2:?--listen needs host:port}"; shift 2 ;;
    --advertise) advertise="${2:?--advertise needs host:port}"; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (see --help)" ;;
    esac
done
[[ -n "$package" ]] || usage_error "give the poller's package: --package FILE"
[[ -n "$BUNDLE" ]] || BUNDLE="$(default_bundle)"
[[ "$listen" =~ $ADDRESS_PATTERN ]] || usage_error "--listen must be host:port, not '$listen'"
[[ -z "$advertise" || "$advertise" =~ $ADDRESS_PATTERN ]] || usage_error "--advertise must be host:port, not '$advertise'"
[[ -f "$package" && -r "$package" ]] || fail "cannot read the package $package; copy the .tar.gz from the operator here"

verify_bundle
check_libraries muster-poller

# The package is checked (and unpacked) in a scratch folder first: a bad one stops us before anything is written.
state="$ROOT/var/lib/muster-poller"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if ! errors="$("$BUNDLE/bin/muster-poller" install --package "$package" --dir "$scratch/state" 2>&1 >/dev/null)"; then
    fail "the package was refused: ${errors#muster-poller: }"
fi
new_manifest="$scratch/state/package/manifest.json"
new_id="$(manifest_value "$new_manifest" id)"
new_domain="$(manifest_value "$new_manifest" trust_domain)"
identity="$(manifest_value "$new_manifest" spiffe_id)"

move_in=1
if [[ -f "$state/package/manifest.json" ]]; then
    old_id="$(manifest_value "$state/package/manifest.json" id)"
    old_domain="$(manifest_value "$state/package/manifest.json" trust_domain)"
    if [[ "$old_id" == "$new_id" ]]; then
        move_in=0
    elif [[ "$old_domain" != "$new_domain" && "$REPLACE" != 1 ]]; then
        fail "this host already holds a poller of trust domain $old_domain; the package is for $new_domain — pass --replace to switch (the old identity is kept aside)"
    fi
fi

CHANGED=0
ensure_user
install_executables muster-poller
install_unit muster-poller.service
{
    echo "MUSTER_POLLER_LISTEN=$listen"
    echo "MUSTER_POLLER_ARGS=${advertise:+--advertise $advertise}"
} | install_env muster-poller.env
if ((move_in)); then
    move_into_place "$scratch/state" "$state"
    CHANGED=1
fi

run_command=("$ROOT$PREFIX/bin/muster-poller" run --dir "$state" --listen "$listen")
[[ -n "$advertise" ]] && run_command+=(--advertise "$advertise")
if ((NO_START)) || ! have_systemd; then
    if ((move_in)); then say "installed $identity"; else say "already installed: $identity (package $new_id); nothing changed"; fi
    say "start it with: runuser -u muster -- ${run_command[*]}"
    exit 0
fi

start_unit muster-poller.service
for _ in $(seq 1 120); do
    if status="$(as_muster "$PREFIX/bin/muster-poller" status --dir "$state" 2>/dev/null)" \
        && grep -q '^attested:  yes' <<<"$status"; then
        ((move_in)) || say "already installed and running; nothing changed"
        echo "$status"
        exit 0
    fi
    sleep 0.5
done
fail "the poller did not attest to Core within 60 s (is Core's address in the package reachable from here?); see: journalctl -u muster-poller"
