# The Debian package, built with cargo-deb from the dev-profile binary the
# tests already built (DEB_PROFILE=release for the optimised one that ships:
# the recipe, the maintainer scripts and lintian's verdict are the same,
# and a cold release build costs CI five minutes) and
# never installed on this machine: its contents and maintainer scripts
# (dpkg-deb), lintian, then an install, an upgrade with mail queued, a
# removal and a purge in a throwaway root (dpkg --root; the maintainer
# scripts run chrootless with DPKG_ROOT, as Debian's own do).
need_pkgs lintian
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
    echo "interop: installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --quiet cargo-deb --version "$CARGO_DEB_VERSION" --locked --no-default-features --features gzip
fi
DEB_PROFILE=${DEB_PROFILE:-dev}
(cd "$ROOT" && cargo build --quiet --profile "$DEB_PROFILE" -p laneway --bin laneway)
DEB_DIR="$WORK/deb"
mkdir -p "$DEB_DIR"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
ARCH=$(dpkg --print-architecture)
# the package of this tree, and the same built as an older version for the upgrade
# (the older first: cargo deb clears target/debian of other builds; the
# older one without its .ddeb, which only the current one is checked for)
(cd "$ROOT" && cargo deb --quiet -p laneway --profile "$DEB_PROFILE" --no-build --no-dbgsym --strip --deb-revision 0 -o "$DEB_DIR/prev.deb" >/dev/null)
(cd "$ROOT" && cargo deb --quiet -p laneway --profile "$DEB_PROFILE" --no-build >/dev/null)
DEB="$ROOT/target/debian/laneway_${VERSION}-1_${ARCH}.deb"
DBGSYM="$ROOT/target/debian/laneway-dbgsym_${VERSION}-1_${ARCH}.ddeb"
check "cargo deb: target/debian/laneway_${VERSION}-1_${ARCH}.deb and its -dbgsym .ddeb" \
    sh -c "test -s '$DEB' && test -s '$DBGSYM'"
check "the packaged binary is stripped (its debug symbols are in the .ddeb)" \
    sh -c "dpkg-deb --fsys-tarfile '$DEB' | tar -xO ./usr/bin/laneway >'$DEB_DIR/laneway' &&
        ! readelf -S '$DEB_DIR/laneway' | grep -q debug_line &&
        dpkg-deb -c '$DBGSYM' | grep -q '/usr/lib/debug/usr/bin/laneway'"

dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$DEB_DIR/files"
check "dpkg-deb -c: binary, unit, sysusers, tmpfiles, conffile, shaping, dashboard, rules, man pages, completions" \
    sh -c "for f in /usr/bin/laneway /lib/systemd/system/laneway.service \
        /usr/lib/sysusers.d/laneway.conf /usr/lib/tmpfiles.d/laneway.conf /etc/laneway/laneway.toml \
        /usr/share/laneway/shaping/default.toml /usr/share/laneway/grafana/laneway.json \
        /usr/share/laneway/prometheus/laneway.rules.yml /usr/share/man/man8/laneway.8.gz \
        /usr/share/man/man8/laneway-queue.8.gz /usr/share/bash-completion/completions/laneway \
        /usr/share/zsh/vendor-completions/_laneway /usr/share/fish/vendor_completions.d/laneway.fish \
        /usr/share/doc/laneway/copyright /usr/share/doc/laneway/changelog.Debian.gz; do
        grep -qx \"\$f\" '$DEB_DIR/files' || { echo \"missing: \$f\"; cat '$DEB_DIR/files'; exit 1; }; done"
dpkg-deb -e "$DEB" "$DEB_DIR/control"
check "dpkg-deb -e: the config is the one conffile; postinst, prerm and postrm are executable" \
    sh -c "[ \"\$(cat '$DEB_DIR/control/conffiles')\" = /etc/laneway/laneway.toml ] &&
        for s in postinst prerm postrm; do [ -x '$DEB_DIR/control/'\$s ] || exit 1; done"
check "dpkg-deb -e: postinst never enables or starts the service (an upgrade only try-restarts it)" \
    sh -c "! grep -vE '^ *#' '$DEB_DIR/control/postinst' | grep -E 'enable|start' | grep -v try-restart"
check "lintian: no errors" sh -c "lintian --tag-display-limit 0 '$DEB' >'$DEB_DIR/lintian.txt' 2>&1; \
    cat '$DEB_DIR/lintian.txt'; ! grep -q '^E:' '$DEB_DIR/lintian.txt'"
if grep -q '^W:' "$DEB_DIR/lintian.txt"; then
    echo "      lintian warnings:"; grep '^W:' "$DEB_DIR/lintian.txt" | sed 's/^/        /'
fi

# the throwaway root: a dpkg database of its own, and of what the
# package's Depends bring only what systemd-analyze verify reads (the
# host's unit directory and /bin/kill, the unit's ExecReload)
R="$WORK/debroot"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/log" "$R/lib/systemd" "$R/bin"
cp -a /lib/systemd/system "$R/lib/systemd/"
cp /bin/kill "$R/bin/"
: >"$R/var/lib/dpkg/status"
dpkg_root() { dpkg --root="$R" --log="$R/var/log/dpkg.log" --force-script-chrootless --force-depends "$@"; }
check "dpkg --root: the previous package installs" dpkg_root -i "$DEB_DIR/prev.deb"
check "postinst: the laneway user and a 0750 spool it owns, no service enabled" \
    sh -c "grep -q '^laneway:' '$R/etc/passwd' &&
        [ \"\$(stat -c %a '$R/var/spool/laneway')\" = 750 ] &&
        [ \"\$(stat -c %u '$R/var/spool/laneway')\" = \"\$(grep '^laneway:' '$R/etc/passwd' | cut -d: -f3)\" ] &&
        [ ! -e '$R/etc/systemd/system/multi-user.target.wants/laneway.service' ]"
check "laneway check-config on the installed configuration" \
    "$R/usr/bin/laneway" check-config --config "$R/etc/laneway/laneway.toml"
check "systemd-analyze verify on the installed unit" \
    systemd-analyze verify --root="$R" /lib/systemd/system/laneway.service

# mail queued in the installed spool by the installed binary: three
# messages to a port nothing listens on, then a clean stop
mkdir -p "$WORK/installed"
ln -s "$R/var/spool/laneway" "$WORK/installed/spool"
SAVED_LANEWAY=$LANEWAY
LANEWAY="$R/usr/bin/laneway"
start_laneway installed "$(relay_config "127.0.0.1:$(free_port)")"
for lane in 9 4 0; do
    swaks --server "$(host "$INSTALLED_MX")" --port "$(port "$INSTALLED_MX")" --from a@example.com \
        --to "q$lane@example.net" --header "X-Priority-Queue: $lane" >/dev/null 2>&1
done
kill -TERM "$INSTALLED_PID"; wait "$INSTALLED_PID" || true
LANEWAY=$SAVED_LANEWAY
spool_lanes() { "$LANEWAY" spool stats --config "$WORK/installed/laneway.toml" --json |
    /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["total"], s["lanes"]["9"], s["lanes"]["4"], s["lanes"]["0"])'; }
spool_is() { local s; s=$(spool_lanes); [ "$s" = "$1" ] || { echo "spool (total, lanes 9 4 0): $s, want $1"; return 1; }; }
check "three messages queued in the installed spool (lanes 9, 4, 0)" spool_is '3 1 1 1'
echo '# edited by the administrator' >>"$R/etc/laneway/laneway.toml"

check "dpkg --root: the upgrade to this tree's package" dpkg_root --force-confold -i "$DEB"
check "upgrade: the new version is installed" \
    sh -c "[ \"\$(dpkg-query --admindir='$R/var/lib/dpkg' -W -f '\${Version}' laneway)\" = '${VERSION}-1' ]"
check "upgrade: the edited conffile is kept" grep -qx '# edited by the administrator' "$R/etc/laneway/laneway.toml"
check "upgrade: the queued mail is kept (3: lanes 9, 4, 0)" spool_is '3 1 1 1'
removed() { dpkg_root -r laneway >/dev/null && [ ! -e "$R/usr/bin/laneway" ] &&
    [ -e "$R/etc/laneway/laneway.toml" ] && spool_is '3 1 1 1'; }
check "dpkg --root -r: removal keeps the spool and the configuration" removed
purged() { dpkg_root -P laneway >/dev/null && [ ! -e "$R/var/spool/laneway" ] &&
    [ ! -e "$R/etc/laneway/laneway.toml" ]; }
check "dpkg --root -P: purge deletes the spool and the configuration" purged
