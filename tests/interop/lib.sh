# Shared helpers for the interop scripts (sourced). Loopback only.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/laneway-interop.XXXXXX)
chmod 755 "$WORK" # peers running as their own users (postfix) must reach their files
PIDS=()
FAILS=0

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$FAILS" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "interop: work files kept in $WORK"; fi
}
trap cleanup EXIT

pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; FAILS=$((FAILS + 1)); }
check() { # check "what" command...
    local what=$1; shift
    if "$@" >"$WORK/check.out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/      /' "$WORK/check.out" | tail -20; fi
}

# Installs Debian packages that are missing (non-interactive).
need_pkgs() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "interop: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if [ -z "${APT_UPDATED:-}" ]; then apt-get update -q >/dev/null; APT_UPDATED=1; fi
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# unpack_pkg PKG: the Debian package's files under $WORK/pkg/PKG (printed),
# downloaded and unpacked but never installed, so that no service of it
# starts and nothing on the machine changes (bench/peers.sh).
source "$ROOT/bench/peers.sh"
unpack_pkg() { peer_unpack "$1" "$WORK/pkg"; }

# prom_bin NAME: promtool or prometheus from the machine, else from
# Debian's prometheus package unpacked (never installed: no service starts).
prom_bin() {
    command -v "$1" || echo "$(unpack_pkg prometheus)/usr/bin/$1"
}

# free_port: a loopback port nothing listens on now.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_sink NAME VAR: a laneway-bench sink saving to $WORK/NAME-mail;
# sets VAR to its address once it listens (and stops it on exit).
start_sink() {
    mkdir -p "$WORK/$1-mail"
    "$BENCH" sink --bind 127.0.0.1:0 --save "$WORK/$1-mail" >"$WORK/$1-sink.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do grep -q 'listening' "$WORK/$1-sink.log" && break; sleep 0.1; done
    printf -v "$2" '%s' "$(sed -n 's/.*addr=\([^ ]*\).*/\1/p' "$WORK/$1-sink.log" | head -1)"
}

# The laneway binary (built by cargo if needed).
LANEWAY="$ROOT/target/debug/laneway"
build_laneway() {
    (cd "$ROOT" && cargo build --quiet -p laneway --bin laneway)
}

# start_laneway NAME CONFIG_TEXT: runs laneway with the config (spool in
# $WORK/NAME/spool), waits for "ready", and exports <NAME>_<LISTENER> =
# host:port for every listening line (listener names upper-cased).
start_laneway() {
    local name=$1 cfg=$2 dir="$WORK/$1"
    mkdir -p "$dir"
    printf '[server]\nhostname = "laneway.test"\nspool_dir = "%s/spool"\n%s\n' "$dir" "$cfg" >"$dir/laneway.toml"
    # never the system resolver: without a [dns] of its own, a test's mail
    # asks a name server address where nothing listens, and stays queued
    grep -q '^\[dns\]' "$dir/laneway.toml" ||
        printf '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = "1s"\nattempts = 1\n' >>"$dir/laneway.toml"
    "$LANEWAY" serve --config "$dir/laneway.toml" 2>"$dir/log" &
    local pid=$!
    PIDS+=("$pid")
    eval "${name^^}_PID=$pid"
    for _ in $(seq 1 300); do
        if grep -q ' ready' "$dir/log"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$dir/log"; echo "laneway $name died"; exit 1; fi
        sleep 0.1
    done
    grep -q ' ready' "$dir/log" || { cat "$dir/log"; echo "laneway $name not ready"; exit 1; }
    while read -r l; do
        local ln addr
        ln=$(sed -n 's/.*listening name=\([^ ]*\) addr=\([^ ]*\).*/\1/p' <<<"$l")
        addr=$(sed -n 's/.*listening name=\([^ ]*\) addr=\([^ ]*\).*/\2/p' <<<"$l")
        [ -n "$ln" ] && eval "export ${name^^}_${ln^^}=$addr"
    done < <(grep 'listening name=' "$dir/log")
}

# relay_config VIA [MORE]: the configuration most checks start from, a
# trusted loopback listener "mx" (X-Priority-Queue honoured) relaying all
# mail to VIA; MORE (more TOML: routes tried before the catch-all, other
# sections) goes before the catch-all route.
relay_config() {
    printf '[[listener]]\nname = "mx"\nbind = "127.0.0.1:0"\ntrust_priority = true\n[relay]\ntrusted_networks = ["127.0.0.1/32"]\n%s\n[[route]]\ndomain = "*"\nvia = "%s"\n' "${2:-}" "$1"
}

host() { echo "${1%:*}"; }
port() { echo "${1##*:}"; }

# spool_total NAME: total messages in that daemon's spool.
spool_total() {
    "$LANEWAY" spool stats --config "$WORK/$1/laneway.toml" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'
}
spool_lane() {
    "$LANEWAY" spool stats --config "$WORK/$1/laneway.toml" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['lanes']['$2'])"
}
