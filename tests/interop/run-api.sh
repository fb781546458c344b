# Sourced by tests/interop/run: the HTTP API with real clients (curl, the
# README's examples; Python's urllib) and a Prometheus scrape checked by
# promtool.

need_pkgs curl
PROMTOOL=$(prom_bin promtool)
(cd "$ROOT" && cargo build --quiet -p laneway-bench)
BENCH="$ROOT/target/debug/laneway-bench"

start_sink api API_SINK

"$LANEWAY" api-key new --name webshop --scopes send,admin >"$WORK/key.txt"
TOKEN=$(sed -n 's/^token: //p' "$WORK/key.txt")
KEYCFG=$(sed -n '/^\[\[api.key\]\]/,$p' "$WORK/key.txt")
start_laneway web "
[api]
bind = \"127.0.0.1:0\"
$KEYCFG
[metrics]
bind = \"127.0.0.1:0\"
[[route]]
domain = \"*\"
via = \"$API_SINK\"
"
API="http://$WEB_API"

# The README's first example, verbatim apart from the address and token.
check "curl: POST /api/v1/messages with priority 9 -> 202" sh -c "
curl -sf -X POST $API/api/v1/messages \
  -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \
  -d '{\"from\": \"app@example.com\", \"to\": [\"user@example.net\"],
       \"subject\": \"Your password reset code\", \"text\": \"123456\", \"priority\": 9}' \
  | grep -q '\"priority\":9'"
check "curl: X-Priority-Queue request header sets the lane" sh -c "
curl -sf -X POST $API/api/v1/messages/raw \
  -H \"Authorization: Bearer $TOKEN\" -H 'X-Priority-Queue: 0' -H 'Content-Type: application/json' \
  -d '{\"envelope_from\": \"news@example.com\", \"recipients\": [\"user@example.net\"],
       \"content\": \"From: news@example.com\\r\\nSubject: Newsletter\\r\\n\\r\\nHello\\r\\n\"}' \
  | grep -q '\"priority\":0'"
check "curl: a bad priority is a JSON 400 naming the field" sh -c "
curl -s -X POST $API/api/v1/messages -H \"Authorization: Bearer $TOKEN\" \
  -d '{\"from\": \"app@example.com\", \"to\": [\"u@example.net\"], \"text\": \"x\", \"priority\": 12}' \
  | grep -q '\"field\":\"priority\"'"
check "python urllib: submission and queue listing" /usr/bin/python3 - "$API" "$TOKEN" <<'PY'
import json, sys, urllib.request
api, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(api + "/api/v1/messages", method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    data=json.dumps({"from": "app@example.com", "to": ["user@example.net"], "subject": "receipt", "text": "thanks"}).encode())
with urllib.request.urlopen(req) as r:
    assert r.status == 202, r.status
    body = json.load(r)
    assert len(body["id"]) == 16 and body["accepted"] == ["user@example.net"], body
req = urllib.request.Request(api + "/api/v1/queue", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req) as r:
    assert "lanes" in json.load(r)
PY
for _ in $(seq 1 100); do [ "$(ls "$WORK/api-mail" | wc -l)" -ge 3 ] && break; sleep 0.1; done
check "the sink got the three messages, none with X-Priority-Queue" sh -c "
[ \$(ls '$WORK/api-mail' | wc -l) -ge 3 ] && ! grep -qi '^x-priority-queue' '$WORK'/api-mail/*.eml"
curl -sf "http://$WEB_METRICS/metrics" >"$WORK/metrics.txt"
check "promtool check metrics on a scrape" sh -c "'$PROMTOOL' check metrics <'$WORK/metrics.txt'"
check "the scrape counts the API submissions per lane" grep -q 'laneway_messages_received_total{.*lane="9"' "$WORK/metrics.txt"
