# Sourced by tests/interop/run: the tools attackers and auditors point at a
# mail server. nmap's smtp-open-relay script from an untrusted address,
# sslyze against the STARTTLS listener (no protocol below TLS 1.2, no weak
# suites), and schemathesis generating requests from the OpenAPI document
# (no server error, whatever it sends).

need_pkgs nmap
VENV="$WORK/venv"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check sslyze==6.3.1 schemathesis==4.32.5

"$LANEWAY" api-key new --name fuzz --scopes send,admin >"$WORK/sec-key.txt"
SEC_TOKEN=$(sed -n 's/^token: //p' "$WORK/sec-key.txt")
SEC_KEYCFG=$(sed -n '/^\[\[api.key\]\]/,$p' "$WORK/sec-key.txt")
start_laneway sec "
[[listener]]
name = \"mx\"
bind = \"127.0.0.1:0\"
tls = \"starttls\"
[tls]
cert = \"$WORK/cert.pem\"
key = \"$WORK/key.pem\"
[relay]
trusted_networks = []
local_domains = [\"local.test\"]
[api]
bind = \"127.0.0.1:0\"
$SEC_KEYCFG
"

# nmap tries 16 relay tricks (%-hack, !-paths, source routes, quoted local
# parts, IP literals) with the target's own name and IP as the "from" side.
# (+ forces the script onto a port nmap does not know as SMTP; the target
# domain example.net is reserved, and nmap stops at RCPT anyway)
nmap_relay() {
    nmap -Pn -n -p "$(port "$1")" --script +smtp-open-relay \
        --script-args smtp-open-relay.domain=example.net,smtp-open-relay.ip=127.0.0.1 \
        "$(host "$1")" 2>&1
}
check "nmap smtp-open-relay: all 16 relay tricks refused" sh -c "
$(declare -f nmap_relay host port); nmap_relay $SEC_MX | tee '$WORK/nmap.out'
grep -q \"doesn't seem to be an open relay\" '$WORK/nmap.out'"
# and the probe can fail: the first daemon trusts 127.0.0.1, so to nmap it
# is (rightly) open
check "nmap smtp-open-relay: sees a trusting listener as open (the probe works)" sh -c "
$(declare -f nmap_relay host port); nmap_relay $MX | grep -q 'Server is an open relay'"

check "sslyze --starttls smtp: TLS 1.2+ only, no weak suites" sh -c "
# (sslyze exits non-zero for the self-signed test certificate; the JSON is
# what counts)
'$VENV/bin/python' -m sslyze --starttls smtp --json_out='$WORK/sslyze.json' $SEC_MX >'$WORK/sslyze.out' 2>&1 || true
[ -s '$WORK/sslyze.json' ] || { cat '$WORK/sslyze.out'; exit 1; }
'$VENV/bin/python' - '$WORK/sslyze.json' <<'PY'
import json, sys
scan = json.load(open(sys.argv[1]))['server_scan_results'][0]
assert scan['scan_status'] == 'COMPLETED', scan.get('connectivity_error_trace')
res = scan['scan_result']
for old in ('ssl_2_0_cipher_suites', 'ssl_3_0_cipher_suites', 'tls_1_0_cipher_suites', 'tls_1_1_cipher_suites'):
    got = res[old]['result']['accepted_cipher_suites']
    assert not got, f'{old}: {[c[\"cipher_suite\"][\"name\"] for c in got]}'
names = []
for modern in ('tls_1_2_cipher_suites', 'tls_1_3_cipher_suites'):
    names += [c['cipher_suite']['name'] for c in res[modern]['result']['accepted_cipher_suites']]
assert names, 'no suite accepted at all'
weak = [n for n in names if any(w in n for w in ('RC4', '3DES', 'DES_', 'NULL', 'EXPORT', 'anon', 'MD5', '_CBC_'))]
assert not weak, f'weak suites: {weak}'
fwd = [n for n in names if n.startswith('TLS_ECDHE') or n.startswith('TLS_AES') or n.startswith('TLS_CHACHA')]
assert fwd == names, f'suites without forward secrecy: {set(names) - set(fwd)}'
print('accepted:', ', '.join(names))
PY"

check "schemathesis: no server error for any generated request" sh -c "
cd '$WORK' && '$VENV/bin/st' run http://$SEC_API/api/v1/openapi.json \
  --checks not_a_server_error -H 'Authorization: Bearer $SEC_TOKEN' \
  --max-examples 25 --request-timeout 10 --no-color >'$WORK/schemathesis.out' 2>&1
rc=\$?; tail -25 '$WORK/schemathesis.out'; exit \$rc"
check "the daemon survived all of it" kill -0 "$SEC_PID"
