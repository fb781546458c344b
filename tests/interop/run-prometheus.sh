# Alert rules (etc/prometheus/laneway.rules.yml): promtool checks them and
# runs their unit tests, one case per alert. promtool comes from the
# machine, or from Debian's prometheus package unpacked into the work
# directory (never installed: no Prometheus service is started).
PROMTOOL=$(prom_bin promtool)
check "promtool check rules" "$PROMTOOL" check rules "$ROOT/etc/prometheus/laneway.rules.yml"
check "promtool test rules: every alert fires on its case" \
    sh -c "cd '$ROOT/etc/prometheus' && '$PROMTOOL' test rules laneway.rules.test.yml"

# The dashboard (etc/grafana/laneway.json) and the alert rules, proven
# against a real Prometheus scraping a running Laneway under a small load:
# every panel's expression returns data, and every alert's expression does
# with its outer threshold comparison removed. Webhooks, the cluster and
# TLS are off here, so this also shows their series exist from the start.
PROMETHEUS=$(prom_bin prometheus)
start_sink prom PROM_SINK
start_laneway scraped "$(relay_config "$PROM_SINK" "[metrics]
bind = \"127.0.0.1:0\"")"
for lane in 0 4 9 9 9; do
    swaks --server "$(host "$SCRAPED_MX")" --port "$(port "$SCRAPED_MX")" --from a@example.com \
        --to "b$lane@example.net" --header "X-Priority-Queue: $lane" >/dev/null 2>&1
done
PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/etc/prometheus/laneway.rules.yml
scrape_configs:
  - job_name: laneway
    static_configs:
      - targets: ["$SCRAPED_METRICS"]
YML
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
check "every dashboard panel and every alert expression returns data from a real Prometheus" \
    /usr/bin/python3 - "127.0.0.1:$PROM_PORT" "$ROOT/etc/grafana/laneway.json" "$ROOT/etc/prometheus/laneway.rules.yml" <<'PY'
import json, re, sys, time, urllib.parse, urllib.request
prom, dashboard, rules = sys.argv[1:4]
def query(q):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        v = json.load(r)
    assert v["status"] == "success", (q, v)
    return v["data"]["result"]
def outer(expr):
    # the expression without its outermost comparison: the left side of
    # the last >, <, >=, <= at parenthesis depth 0
    depth, cut = 0, None
    for i, c in enumerate(expr):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0 and c in "<>" and expr[i - 1] == " ":
            cut = i
    return expr[:cut].strip() if cut else expr.strip()
exprs = []
for p in json.load(open(dashboard))["panels"]:
    for t in p["targets"]:
        e = t["expr"].replace("$__rate_interval", "1m").replace('=~"$instance"', '=~".*"')
        exprs.append((f"panel {p['title']!r} {t['refId']}", e))
text = open(rules).read()
for name, body in re.findall(r"- alert: (\w+)\n\s+expr: (\|\n(?:\s{10,}.*\n)+|.*\n)", text):
    e = " ".join(l.strip() for l in body.lstrip("|").strip().splitlines())
    exprs.append((f"alert {name}", outer(e)))
assert sum(1 for n, _ in exprs if n.startswith("alert")) == 7, exprs
deadline = time.time() + 120
missing = dict(exprs)
while missing and time.time() < deadline:
    for name, e in list(missing.items()):
        try:
            if query(e):
                del missing[name]
        except OSError:
            pass
    time.sleep(1)
assert not missing, "no data for: " + "; ".join(f"{n}: {e}" for n, e in missing.items())
print(f"{len(exprs)} expressions return data")
PY
