# Sourced by tests/interop/run: DANE against real DNSSEC. A zone signed
# with ldns-signzone is served by unbound (auth-zone) and validated by the
# same unbound against a trust anchor for the zone; Laneway trusts its AD
# bit ([dns] dnssec = true) and delivers to a second Laneway whose STARTTLS
# certificate the TLSA records pin. A mismatching TLSA record and a zone
# whose signature does not verify (bogus) must both defer, never plaintext.

need_pkgs unbound ldnsutils openssl

D="$WORK/dane"
mkdir -p "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=mx.dane.test -addext subjectAltName=DNS:mx.dane.test \
    -keyout "$D/key.pem" -out "$D/cert.pem" >/dev/null 2>&1
SPKI_SHA256=$(openssl x509 -in "$D/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)

# the receiving MX: a Laneway with STARTTLS that accepts mail for the test domains
start_laneway rx "
[[listener]]
name = \"mx\"
bind = \"127.0.0.1:0\"
tls = \"starttls\"
[tls]
cert = \"$D/cert.pem\"
key = \"$D/key.pem\"
[relay]
local_domains = [\"dane.test\", \"wrong.dane.test\", \"bogus.test\"]
"
RX_PORT=$(port "$RX_MX")

# two signed zones: dane.test (a matching and a mismatching TLSA record)
# and bogus.test (a record changed after signing)
zone() { # zone NAME BODY
    printf '$ORIGIN %s.\n$TTL 300\n@ IN SOA ns.%s. admin.%s. 1 3600 600 86400 300\n@ IN NS ns.%s.\nns IN A 127.0.0.1\n%s\n' \
        "$1" "$1" "$1" "$1" "$2" >"$D/$1.zone"
    local ksk zsk
    ksk=$(cd "$D" && ldns-keygen -a ECDSAP256SHA256 -k "$1")
    zsk=$(cd "$D" && ldns-keygen -a ECDSAP256SHA256 "$1")
    (cd "$D" && ldns-signzone -n "$1.zone" "$ksk" "$zsk")
    echo "  trust-anchor: \"$(cat "$D/$ksk.ds")\"" >>"$D/anchors.conf"
}
: >"$D/anchors.conf"
zone dane.test "@ IN MX 10 mx.dane.test.
mx IN A 127.0.0.1
_$RX_PORT._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256
wrong IN MX 10 mx2.dane.test.
mx2 IN A 127.0.0.1
_$RX_PORT._tcp.mx2 IN TLSA 3 1 1 $(printf '%064d' 0)"
zone bogus.test "@ IN MX 10 mx.bogus.test.
mx IN A 127.0.0.1
_$RX_PORT._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256"
# tamper with the signed TLSA record: its signature no longer verifies
sed -i "s/TLSA\t3 1 1 $SPKI_SHA256/TLSA\t3 1 1 $(printf '%064d' 1)/" "$D/bogus.test.zone.signed"
grep -q "$(printf '%064d' 1)" "$D/bogus.test.zone.signed" || fail "bogus.test was not tampered with"

DNS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$D/unbound.conf" <<CONF
server:
  interface: 127.0.0.1@$DNS_PORT
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$D"
  pidfile: ""
  use-syslog: no
  logfile: "$D/unbound.log"
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  local-zone: "test." nodefault
$(cat "$D/anchors.conf")
auth-zone:
  name: "dane.test"
  zonefile: "$D/dane.test.zone.signed"
  for-upstream: yes
  for-downstream: no
auth-zone:
  name: "bogus.test"
  zonefile: "$D/bogus.test.zone.signed"
  for-upstream: yes
  for-downstream: no
CONF
unbound -c "$D/unbound.conf" &
PIDS+=($!)
for _ in $(seq 1 100); do drill -p "$DNS_PORT" @127.0.0.1 SOA dane.test >/dev/null 2>&1 && break; sleep 0.1; done
check "unbound validates dane.test (AD bit on the TLSA answer)" \
    sh -c "drill -D -p $DNS_PORT @127.0.0.1 TLSA _$RX_PORT._tcp.mx.dane.test | grep -q 'flags:.* ad'"
check "unbound refuses the tampered bogus.test (SERVFAIL)" \
    sh -c "drill -D -p $DNS_PORT @127.0.0.1 TLSA _$RX_PORT._tcp.mx.bogus.test | grep -q 'rcode: SERVFAIL'"

start_laneway tx "
[[listener]]
name = \"in\"
bind = \"127.0.0.1:0\"
[relay]
trusted_networks = [\"127.0.0.1/32\"]
[queue]
retry_base = \"1s\"
retry_max = \"2s\"
[outbound]
port = $RX_PORT
dane = true
[dns]
nameservers = [\"127.0.0.1:$DNS_PORT\"]
dnssec = true
timeout = \"2s\"
attempts = 1
"
for rcpt in x@dane.test x@wrong.dane.test x@bogus.test; do
    swaks --server "$(host "$TX_IN")" --port "$(port "$TX_IN")" --from a@sender.test --to "$rcpt" \
        --header "Subject: dane $rcpt" >"$D/swaks.out" 2>&1 || { cat "$D/swaks.out"; fail "submit $rcpt"; }
done
# delivery events in the log: event=<type> ... rcpt=<addr> ... (values may be quoted)
event() { grep -E "event=\"?$2\"? .*rcpt=\"?$1\"? " "$WORK/tx/log"; }
delivered() { event "$1" delivery >/dev/null; }
deferred() { event "$1" transient_failure | grep -q "$2"; }
for _ in $(seq 1 150); do
    delivered x@dane.test && deferred x@wrong.dane.test TLSA && deferred x@bogus.test TLSA && break
    sleep 0.2
done
event x@dane.test delivery >"$D/ok.txt" || true
event x@wrong.dane.test transient_failure >"$D/wrong.txt" || true
event x@bogus.test transient_failure >"$D/bogus.txt" || true
check "DANE: delivered over TLS pinned by TLSA 3 1 1 (tls_policy=dane)" \
    grep -Eq 'tls_policy="?dane' "$D/ok.txt"
check "DANE: a mismatching TLSA record defers (no TLSA record matches)" \
    grep -q 'no TLSA record matches' "$D/wrong.txt"
check "DANE: a bogus TLSA answer defers (the TLSA lookup failed)" \
    grep -q 'TLSA lookup failed' "$D/bogus.txt"
RX_TOTAL=$(spool_total rx)
check "DANE: only the matching message reached the receiving MX ($RX_TOTAL)" \
    test "$RX_TOTAL" = 1
