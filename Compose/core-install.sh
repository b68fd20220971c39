#!/usr/bin/env bash
# Installs Muster Core on this host, in one command, on the embedded default (SQLite + built-in CA) or PostgreSQL:
#
#   core-install.sh [--database postgres://…] [--http-listen ADDR] [--grpc-listen ADDR] [--advertise ADDR]
#                   [--trust-domain TD] [--bundle DIR] [--prefix DIR] [--no-start] [--root DIR]
#
# Checks the bundle's checksums and the system libraries before it writes anything; creates the muster user,
# installs muster-core, muster and the systemd unit, writes /etc/muster/muster-core.env (0600: a database URL may
# hold a password) and starts Core. The admin token is then in /var/lib/muster-core/admin.token.
set -euo pipefail
PROGRAM="core-install.sh"
# shellcheck source=SCRIPTDIR/install-common.sh
source "$(dirname "$0")/install-common.sh"

settings=()
while (($#)); do
    common_option "$@"
    if ((USED)); then shift "$USED"; continue; fi
    case "$1" in
    --database)
        [[ "${2:-}" =~ ^(postgres|postgresql)://|^sqlite: ]] || usage_error "--database must be postgres://… or sqlite:PATH"
        settings+=("MUSTER_DATABASE=$2"); shift 2 ;;
    --http-listen | --grpc-listen | --advertise)
        [[ "${2:-}" =~ $ADDRESS_PATTERN ]] || usage_error "$1 must be host:port"
        name="$(tr 'a-z-' 'A-Z_' <<<"${1#--}")"
        settings+=("MUSTER_$name=$2"); shift 2 ;;
    --trust-domain)
        [[ "${2:-}" =~ ^[a-z0-9.-]{1,255}$ ]] || usage_error "--trust-domain must be a DNS-like name (a-z, 0-9, '.', '-')"
        settings+=("MUSTER_TRUST_DOMAIN=$2"); shift 2 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (see --help)" ;;
    esac
done
[[ -n "$BUNDLE" ]] || BUNDLE="$(default_bundle)"

verify_bundle
check_libraries muster-core

data="$ROOT/var/lib/muster-core"
CHANGED=0
ensure_user
install_executables muster-core muster
install_unit muster-core.service
{
    echo "MUSTER_DATA_DIR=/var/lib/muster-core"
    for setting in "${settings[@]}"; do echo "$setting"; done
} | install_env muster-core.env
chmod 0600 "$ROOT/etc/muster/muster-core.env"
mkdir -p "$data"
chown muster:muster "$data"
chmod 0700 "$data"

if ((NO_START)) || ! have_systemd; then
    say "installed; start it with: runuser -u muster -- env \$(cat $ROOT/etc/muster/muster-core.env) $ROOT$PREFIX/bin/muster-core serve --data-dir $data"
    exit 0
fi
start_unit muster-core.service
for _ in $(seq 1 120); do
    if [[ -s "$data/admin.token" ]] && systemctl is-active --quiet muster-core.service; then
        say "Core is running; the admin token is in $data/admin.token (root only)"
        exit 0
    fi
    sleep 0.5
done
fail "Core did not start within 60 s; see: journalctl -u muster-core"
