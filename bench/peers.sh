# Mail peers for the benchmarks and the interop tests (sourced), run as
# private instances: the machine's own binaries when the Debian package is
# installed, else that package unpacked into a private directory (apt-get
# download + dpkg-deb -x), never installed. Installing Postfix would remove
# an Exim the machine has, and the reverse; an unpacked peer changes
# nothing but the system users it runs as (created if missing).
#
#   postfix_setup DIR   sets PF_SBIN (postfix, postconf, smtp-source,
#                       smtp-sink) and PF_MAINCF (main.cf lines an unpacked
#                       instance needs; empty otherwise); exports
#                       LD_LIBRARY_PATH for an unpacked one.
#   exim_setup DIR      sets EXIM (the exim4 binary), likewise.
#
# PEERS_UNPACKED=1 uses the unpacked packages even where one is installed.

# peer_unpack PKG DIR: the package's files under DIR/PKG (printed).
peer_unpack() {
    local p=$1 dir="$2/$1"
    if [ ! -d "$dir" ]; then
        mkdir -p "$2"
        (cd "$2" && apt-get download -q "$p" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get download -q "$p" >/dev/null 2>&1; }) ||
            { echo "cannot download the Debian package $p" >&2; return 1; }
        dpkg-deb -x "$2/$p"_*.deb "$dir"
        chmod 755 "$2" "$dir" # the peer's own user must reach its files
    fi
    echo "$dir"
}

# peer_user USER GROUP [EXTRA_GROUP]: a system user and group, created if missing.
peer_user() {
    getent group "$2" >/dev/null || groupadd --system "$2"
    getent passwd "$1" >/dev/null ||
        useradd --system --gid "$2" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
    if [ -n "${3:-}" ]; then getent group "$3" >/dev/null || groupadd --system "$3"; fi
}

postfix_setup() {
    PF_MAINCF=""
    if [ -z "${PEERS_UNPACKED:-}" ] && dpkg -s postfix >/dev/null 2>&1; then
        PF_SBIN=/usr/sbin
        return
    fi
    local u
    u=$(peer_unpack postfix "$1")
    peer_user postfix postfix postdrop
    PF_SBIN="$u/usr/sbin"
    export LD_LIBRARY_PATH="$u/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # the instance finds its programs and libraries in the unpacked tree,
    # and its daemons keep LD_LIBRARY_PATH (Postfix clears the environment)
    PF_MAINCF="command_directory = $u/usr/sbin
daemon_directory = $u/usr/lib/postfix/sbin
shlib_directory = $u/usr/lib/postfix
meta_directory = $u/etc/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH"
}

# exim_setup DIR: sets EXIM (the exim4 binary) and exports LD_LIBRARY_PATH
# for an unpacked one. Debian's exim4-daemon-light, with libidn12 when the
# machine lacks it; the unpacked binary loses its setuid bit, so that the
# copies Exim runs of itself for deliveries keep LD_LIBRARY_PATH.
exim_setup() {
    peer_user Debian-exim Debian-exim
    if [ -z "${PEERS_UNPACKED:-}" ] && { dpkg -s exim4-daemon-light >/dev/null 2>&1 ||
        dpkg -s exim4-daemon-heavy >/dev/null 2>&1; }; then
        EXIM=/usr/sbin/exim4
        return
    fi
    local u
    u=$(peer_unpack exim4-daemon-light "$1")
    chmod u-s "$u/usr/sbin/exim4"
    EXIM="$u/usr/sbin/exim4"
    if ! ldconfig -p | grep -q 'libidn\.so\.12 '; then
        u=$(peer_unpack libidn12 "$1")
        export LD_LIBRARY_PATH="$(echo "$u"/usr/lib/*-linux-gnu)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
}
