# Sourced by tests/interop/run: the way users deploy Laneway — a real
# Postfix (Debian's, loopback only, relayhost = Laneway) relays mail
# submitted with swaks through Laneway to a sink, which must see both
# Received: hops.

# Postfix: the machine's, or Debian's package unpacked (never installed:
# installing it would remove an Exim the machine has)
postfix_setup "$WORK/pkg"
(cd "$ROOT" && cargo build --quiet -p laneway-bench)
BENCH="$ROOT/target/debug/laneway-bench"

start_sink postfix SINK

start_laneway relay "
[[listener]]
name = \"mx\"
bind = \"127.0.0.1:0\"
[relay]
trusted_networks = [\"127.0.0.1/32\"]
[[route]]
domain = \"*\"
via = \"$SINK\"
"
LW=$RELAY_MX

PF="$WORK/postfix"
PF_PORT=$(free_port)
mkdir -p "$PF/conf" "$PF/queue" "$PF/data"
chown postfix "$PF/data"
# master.cf written whole (never the system's, which may be configured)
sed "s/@PORT@/$PF_PORT/" "$ROOT/bench/postfix/master.cf.in" >"$PF/conf/master.cf"
cat >"$PF/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydestination =
local_transport = error:local delivery disabled
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [$(host "$LW")]:$(port "$LW")
smtp_dns_support_level = disabled
maillog_file_prefixes = $WORK
maillog_file = $PF/maillog
alias_maps =
alias_database =
$PF_MAINCF
CF
stop_postfix() { "$PF_SBIN/postfix" -c "$PF/conf" stop >/dev/null 2>&1 || true; }
if "$PF_SBIN/postfix" -c "$PF/conf" start >/dev/null 2>&1; then
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PF_PORT) 2>/dev/null && break; sleep 0.1; done
    check "swaks -> Postfix ($PF_PORT) accepts" \
        sh -c "swaks --server 127.0.0.1 --port $PF_PORT --from alice@example.com --to bob@example.net --header 'Subject: via postfix' | grep -q '250 2.0.0 Ok: queued'"
    for _ in $(seq 1 200); do [ -e "$WORK/postfix-mail/0.eml" ] && break; sleep 0.1; done
    check "sink received the message relayed by Postfix through Laneway" test -e "$WORK/postfix-mail/0.eml"
    check "both Received: hops (Postfix, then Laneway) are in the message" \
        sh -c "grep -q 'by postfix.test (Postfix)' '$WORK/postfix-mail/0.eml' && grep -q 'by laneway.test (Laneway) with ESMTP' '$WORK/postfix-mail/0.eml'"
    for _ in $(seq 1 100); do [ "$(spool_total relay)" = 0 ] && break; sleep 0.1; done
    check "Laneway's spool is empty after delivery" test "$(spool_total relay)" = 0
    stop_postfix
else
    fail "postfix did not start (see $PF/maillog)"
    cat "$PF/maillog" 2>/dev/null | tail -5
fi
