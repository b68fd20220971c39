#!/usr/bin/env bash
# Installs a Muster agent (or checker) on this edge machine, in one command, from its package or from the one-line
# join command the operator copied from the console into a file:
#
#   edge-agent-install.sh (--package FILE | --join-command-file FILE) [--bundle DIR] [--prefix DIR]
#                         [--no-start] [--replace] [--root DIR]
#
# Checks the bundle's checksums, the system libraries and the package or command before it writes anything; joins
# the poller into a scratch folder (so a refused join leaves the host as it was), then creates the muster user,
# installs the executable and the systemd unit, moves the identity into /var/lib/muster-agent and starts the
# agent. The join command is read, never run: only its poller address, poller name, CA pin and token are taken.
set -euo pipefail
PROGRAM="edge-agent-install.sh"
# shellcheck source=SCRIPTDIR/install-common.sh
source "$(dirname "$0")/install-common.sh"

package=""
command_file=""
while (($#)); do
    common_option "$@"
    if ((USED)); then shift "$USED"; continue; fi
    case "$1" in
    --package) package="${2:?--package needs a file}"; shift 2 ;;
    --join-command-file) command_file="${2:?--join-command-file needs a file}"; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (see --help)" ;;
    esac
done
if [[ -n "$package" && -n "$command_file" ]] || [[ -z "$package" && -z "$command_file" ]]; then
    usage_error "give exactly one of --package FILE and --join-command-file FILE"
fi
[[ -n "$BUNDLE" ]] || BUNDLE="$(default_bundle)"
source_file="${package:-$command_file}"
[[ -f "$source_file" && -r "$source_file" ]] || fail "cannot read $source_file; copy it from the operator here"

verify_bundle
check_libraries muster-agent

state="$ROOT/var/lib/muster-agent"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

if [[ -n "$package" ]]; then
    new_id="$(tar -xzOf "$package" manifest.json 2>/dev/null | sed -n 's/^ *"id" *: *"\([^"]*\)".*/\1/p' | head -n1)"
    [[ -n "$new_id" ]] || fail "$package is not a Muster package (no manifest.json); download it again"
    if [[ -f "$state/package/manifest.json" && -d "$state/identity" ]] \
        && [[ "$(manifest_value "$state/package/manifest.json" id)" == "$new_id" ]]; then
        identity="$(manifest_value "$state/package/manifest.json" spiffe_id)"
        say "already installed: $identity (package $new_id); nothing changed"
        exit 0
    fi
    join=("$BUNDLE/bin/muster-agent" install --package "$package" --dir "$scratch/state")
    token_input=/dev/null
else
    # The console's line: printf '%s\n' 'TOKEN' | muster-agent join --poller 'ADDR' --poller-id 'NAME' --token-file - --ca-pin 'sha256:HEX'
    line="$(tr -d '\r' < "$command_file" | grep -m1 'muster-agent join' || true)"
    value() { sed -n "s/.*$1 '\\([^']*\\)'.*/\\1/p" <<<"$line"; }
    poller="$(value --poller)"
    poller_id="$(value --poller-id)"
    pin="$(value --ca-pin)"
    token="$(sed -n "s/^printf '%s\\\\n' '\\(mjt_[A-Za-z0-9_-]*\\)' |.*/\\1/p" <<<"$line")"
    [[ "$poller" =~ $ADDRESS_PATTERN ]] || fail "$command_file holds no join command with a poller address; paste the whole line from the console"
    [[ "$poller_id" =~ ^[a-z0-9._-]{1,63}$ ]] || fail "$command_file names no valid poller (--poller-id)"
    [[ "$pin" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "$command_file holds no CA pin (--ca-pin sha256:…)"
    [[ -n "$token" ]] || fail "$command_file holds no join token; copy the command from the console's hand-over page (the token is shown there once)"
    if [[ -d "$state/identity" ]] && [[ "$REPLACE" != 1 ]]; then
        fail "this machine already holds an agent identity in $state; pass --replace to join again (the old one is kept aside)"
    fi
    join=("$BUNDLE/bin/muster-agent" join --poller "$poller" --poller-id "$poller_id" --ca-pin "$pin"
        --token-file - --dir "$scratch/state")
    token_input="$scratch/token"
    (umask 077 && printf '%s\n' "$token" > "$token_input")
fi

if [[ -d "$state/identity" && -n "$package" && "$REPLACE" != 1 ]]; then
    fail "this machine already holds another agent identity in $state; pass --replace to install this package (the old one is kept aside)"
fi
if ! output="$("${join[@]}" < "$token_input" 2>&1)"; then
    fail "the join was refused: $(tail -n1 <<<"$output" | sed 's/^muster-agent: //')"
fi
identity="$(grep -o 'spiffe://[^ ;]*' <<<"$output" | head -n1)"

CHANGED=1
ensure_user
install_executables muster-agent
install_unit muster-agent.service
move_into_place "$scratch/state" "$state"

if ((NO_START)) || ! have_systemd; then
    # Without systemd's RuntimeDirectory= the Workload API socket's directory is made here: 0755, the agent's own.
    install -d -m 0755 -o muster -g muster "$ROOT/run/muster-agent"
    say "joined as $identity; start it with: runuser -u muster -- $ROOT$PREFIX/bin/muster-agent run --dir $state --workload-socket $ROOT/run/muster-agent/workload.sock"
    exit 0
fi
start_unit muster-agent.service
for _ in $(seq 1 60); do
    if status="$(as_muster "$PREFIX/bin/muster-agent" status --dir "$state" 2>/dev/null)"; then
        echo "$status"
        exit 0
    fi
    sleep 0.5
done
fail "the agent did not report healthy within 30 s; see: journalctl -u muster-agent"
