# Sourced by tests/interop/run: an independent DKIM verifier (dkimpy,
# Debian python3-dkim) checks what a sink received from Laneway, signed
# with RSA and Ed25519 keys made by `laneway dkim keygen`.

need_pkgs python3-dkim python3-nacl
mkdir -p "$WORK/dkim"
"$LANEWAY" dkim keygen --domain example.com --selector rsa1 --algorithm rsa-sha256 --out "$WORK/dkim/rsa1.pem" >"$WORK/dkim/rsa1.txt" 2>/dev/null
"$LANEWAY" dkim keygen --domain example.com --selector ed1 --algorithm ed25519-sha256 --out "$WORK/dkim/ed1.pem" >"$WORK/dkim/ed1.txt" 2>/dev/null
head -c 32 /dev/urandom | base64 >"$WORK/dkim/bounce.secret"
start_sink dkim DKIM_SINK
start_laneway signer "
[[listener]]
name = \"mx\"
bind = \"127.0.0.1:0\"
[relay]
trusted_networks = [\"127.0.0.1/32\"]
[[route]]
domain = \"*\"
via = \"$DKIM_SINK\"
[auth]
bounce_secret_file = \"$WORK/dkim/bounce.secret\"
[[domain]]
name = \"example.com\"
bounce_domain = \"bounces.example.com\"
unsubscribe = { lanes = \"0-4\", base_url = \"https://unsub.example.com\" }
[[domain.dkim]]
selector = \"rsa1\"
key = \"$WORK/dkim/rsa1.pem\"
algorithm = \"rsa-sha256\"
[[domain.dkim]]
selector = \"ed1\"
key = \"$WORK/dkim/ed1.pem\"
algorithm = \"ed25519-sha256\"
"
check "swaks through the signing relay" sh -c "swaks --server $(host $SIGNER_MX) --port $(port $SIGNER_MX) --from alice@example.com --to bob@example.net --header 'From: Alice <alice@example.com>' --header 'Subject: signed' --body 'Hello Bob.' | grep -q '250 2.0.0 Ok: queued'"
for _ in $(seq 1 100); do [ -e "$WORK/dkim-mail/0.eml" ] && break; sleep 0.1; done
check "the envelope sender is a VERP address at the bounce domain" grep -q '^X-Sink-Mail-From: <b+[a-z0-9]*@bounces.example.com>' "$WORK/dkim-mail/0.eml"
check "dkimpy verifies both signatures (RSA and Ed25519)" /usr/bin/python3 - "$WORK/dkim-mail/0.eml" "$WORK/dkim/rsa1.txt" "$WORK/dkim/ed1.txt" <<'PY'
import re, sys, dkim
raw = open(sys.argv[1], "rb").read()
msg = raw.split(b"\r\n", 2)[2]            # drop the sink's X-Sink-* lines
records = {}
for f in sys.argv[2:]:
    line = open(f).read()
    name = line.split()[0]
    records[name.encode()] = "".join(re.findall(r'"([^"]*)"', line)).encode()
dns = lambda name, timeout=5: records.get(name if name.endswith(b".") else name + b".")
n = msg.count(b"DKIM-Signature:")
assert n == 2, n
d = dkim.DKIM(msg)
for i in range(n):
    assert d.verify(idx=i, dnsfunc=dns), f"signature {i} did not verify"
print("both signatures verify")
PY
check "one-click unsubscribe (RFC 8058, with the mailto fallback) on the lane-4 mail, covered by both signatures" /usr/bin/python3 - "$WORK/dkim-mail/0.eml" <<'PY'
import re, sys
msg = open(sys.argv[1], "rb").read().split(b"\r\n", 2)[2]
head = msg.split(b"\r\n\r\n", 1)[0].decode()
m = re.search(r"^List-Unsubscribe: <https://unsub\.example\.com/u/([a-z2-7]+)>,\r\n <mailto:unsubscribe@bounces\.example\.com\?subject=unsubscribe%20([a-z2-7]+)>\r$", head, re.M)
assert m and m.group(1) == m.group(2), head
assert "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head, head
sigs = re.findall(r"DKIM-Signature:.*?(?=\r\n\S)", head, re.S)
assert len(sigs) == 2, sigs
for s in sigs:
    h = re.search(r"h=([^;]*)", s.replace("\r\n", "")).group(1).lower().replace(" ", "").replace("\t", "")
    assert "list-unsubscribe" in h.split(":") and "list-unsubscribe-post" in h.split(":"), h
print("fields present and signed")
PY
