# Shared by edge-poller-install.sh, edge-agent-install.sh and core-install.sh (sourced, not run).
# Every failure is one line on stderr, "PROGRAM: what failed; what to do", and exit 1 (2 for a usage error).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the options set here are read by the scripts that source this file

PROGRAM="${PROGRAM:-$(basename "$0")}"
ROOT=""            # --root DIR: install below DIR instead of / (staged installs, tests)
PREFIX="/usr/local"
BUNDLE=""
NO_START=0
REPLACE=0
# host:port, the host a name, an IPv4 address or a bracketed IPv6 address.
ADDRESS_PATTERN='^[][A-Za-z0-9.:-]+:[0-9]+$'

fail() { echo "$PROGRAM: $*" >&2; exit 1; }
usage_error() { echo "$PROGRAM: $*" >&2; exit 2; }
say() { echo "$PROGRAM: $*"; }

# The bundle is the folder this script came in, unless --bundle says otherwise.
default_bundle() { cd "$(dirname "${BASH_SOURCE[1]}")" && pwd; }

# Every file of the bundle against SHA256SUMS, before anything is written.
verify_bundle() {
    [[ -f "$BUNDLE/SHA256SUMS" ]] || fail "$BUNDLE is not a Muster bundle (no SHA256SUMS); unpack muster-VERSION-linux-ARCH.tar.gz and run the script from it"
    local report
    if ! report="$(cd "$BUNDLE" && sha256sum --check --strict --quiet SHA256SUMS 2>&1)"; then
        fail "the bundle in $BUNDLE is damaged or was changed ($(echo "$report" | head -n1)); download it again and check it with sha256sum"
    fi
}

# The shared libraries an executable needs and this host lacks, named with the Debian packages that hold them.
check_libraries() {
    local exe="$BUNDLE/bin/$1" missing packages=()
    missing="$(ldd "$exe" 2>/dev/null | awk '/not found/ { print $1 }' | sort -u)"
    [[ -z "$missing" ]] && return 0
    local lib
    for lib in $missing; do
        packages+=("$(awk -v lib="$lib" '$1 == lib { print $2 }' "$BUNDLE/DEPENDENCIES" 2>/dev/null | head -n1)")
    done
    fail "this host lacks the shared libraries $(echo "$missing" | tr '\n' ' ')— install them with: apt-get install -y ${packages[*]}"
}

# Reads one string value of a package's pretty-printed manifest.json.
manifest_value() {
    sed -n "s/^ *\"$2\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n1
}

# The service user: a system account without a shell or home.
ensure_user() {
    getent passwd muster >/dev/null && return 0
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin muster \
        || fail "cannot create the system user muster (run as root)"
    say "created the system user muster"
}

# Copies a file into place only when it differs (so a second run with the same bundle changes nothing).
place() {
    local source="$1" target="$2" mode="$3"
    if [[ -f "$target" ]] && cmp -s "$source" "$target"; then return 0; fi
    install -D -m "$mode" "$source" "$target"
    CHANGED=1
}

install_executables() {
    local exe
    for exe in "$@"; do place "$BUNDLE/bin/$exe" "$ROOT$PREFIX/bin/$exe" 0755; done
}

# The unit with @PREFIX@ filled in.
install_unit() {
    local unit="$1" rendered
    rendered="$(mktemp)"
    sed "s|@PREFIX@|$PREFIX|g" "$BUNDLE/systemd/$unit" > "$rendered"
    place "$rendered" "$ROOT/etc/systemd/system/$unit" 0644
    rm -f "$rendered"
}

# An environment file for a unit, from KEY=VALUE lines on stdin.
install_env() {
    local target="$ROOT/etc/muster/$1" rendered
    rendered="$(mktemp)"
    cat > "$rendered"
    place "$rendered" "$target" 0644
    rm -f "$rendered"
}

# Moves a checked state folder into place; what was there is kept aside (never deleted), owned by muster, 0700.
move_into_place() {
    local checked="$1" state="$2"
    if [[ -e "$state" ]]; then
        local aside
        aside="$state.previous-$(date -u +%Y%m%dT%H%M%SZ)"
        mv "$state" "$aside"
        say "kept the previous identity in $aside"
    fi
    mkdir -p "$(dirname "$state")"
    mv "$checked" "$state"
    chown -R muster:muster "$state"
    chmod 0700 "$state"
}

# systemd manages services here (PID 1 is systemd and we install into the real root).
have_systemd() { [[ -z "$ROOT" && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

as_muster() {
    if command -v runuser >/dev/null; then runuser -u muster -- "$@"; else setpriv --reuid=muster --regid=muster --init-groups -- "$@"; fi
}

# Starts (or restarts, when something changed) a unit.
start_unit() {
    local unit="$1"
    systemctl daemon-reload
    if [[ "${CHANGED:-0}" == 1 ]] || ! systemctl is-active --quiet "$unit"; then
        systemctl enable --quiet "$unit"
        systemctl restart "$unit" || fail "systemd could not start $unit; see: journalctl -u $unit"
    fi
}

# Common options: sets USED to how many arguments it took (0 when the option is not a common one).
common_option() {
    USED=0
    case "$1" in
    --bundle) BUNDLE="${2:?--bundle needs a directory}"; USED=2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; USED=2 ;;
    --root) ROOT="${2:?--root needs a directory}"; USED=2 ;;
    --no-start) NO_START=1; USED=1 ;;
    --replace) REPLACE=1; USED=1 ;;
    esac
}
