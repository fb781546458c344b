# laneway top, run the way an operator runs it: in an 80×24 terminal
# (tmux), against a daemon with mail queued and flowing. What it shows is
# read back with `tmux capture-pane` and compared with `laneway queue stats
# --json`; its keys suspend and resume a destination and quit.
need_pkgs tmux
BENCH="$ROOT/target/debug/laneway-bench"
start_sink top TOP_SINK
CLOSED=$(free_port) # nothing listens: mail to slow.test is deferred and stays
start_laneway top "$(relay_config "$TOP_SINK" "[[route]]
domain = \"slow.test\"
via = \"127.0.0.1:$CLOSED\"")"
TOP_CFG="$WORK/top/laneway.toml"
TOP_SOCK="lw-top-$$"
send_top() { # send_top LANE RCPT
    swaks --server "$(host "$TOP_MX")" --port "$(port "$TOP_MX")" --from a@example.com \
        --to "$2" --header "X-Priority-Queue: $1" >/dev/null 2>&1
}
stats() { "$LANEWAY" queue stats --config "$TOP_CFG" --json; }
# screen: the pane as text, one line per row
screen() { tmux -L "$TOP_SOCK" capture-pane -p -t top 2>/dev/null; }
# wait_screen PATTERN: true once the pane shows PATTERN (grep -E), within 15 s
wait_screen() {
    for _ in $(seq 1 75); do screen | grep -qE "$1" && return 0; sleep 0.2; done
    echo "not on screen within 15 s: $1"; screen; return 1
}
# wait_stats PYTHON_CONDITION: true once `queue stats --json` (as q) meets it
wait_stats() {
    for _ in $(seq 1 100); do
        stats | /usr/bin/python3 -c "import json,sys; q=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.2
    done
    echo "queue stats never met: $1"; stats; return 1
}

# queued to stay: 6 deferred to slow.test in lanes 0, 4 and 9; 4 held for
# parked.test (suspended first) in lanes 2 and 7
"$LANEWAY" queue suspend parked.test --config "$TOP_CFG" >/dev/null
for lane in 0 0 0 4 4 9; do send_top "$lane" "u$lane@slow.test"; done
for lane in 2 2 7 7; do send_top "$lane" "p$lane@parked.test"; done
check "setup: 6 deferred to slow.test and 4 held for parked.test" \
    wait_stats 'q["total"] == 10 and q["deferred"] == 6'

tmux -L "$TOP_SOCK" new-session -d -s top -x 80 -y 24 "$LANEWAY top --config $TOP_CFG"
PIDS+=("$(tmux -L "$TOP_SOCK" display -p -t top '#{pane_pid}')")
check "top: the 80×24 screen shows the queue" wait_screen '^laneway top  queued 10 '
cat >"$WORK/top-compare.py" <<'PY'
# the pane (argv[2]) against queue stats --json (argv[1]): the header's
# totals and each lane's queued, ready and deferred
import json, re, sys
q = json.load(open(sys.argv[1]))
pane = open(sys.argv[2]).read()
print(pane)
lines = pane.splitlines()
head = re.search(r"queued (\d+)  ready (\d+)  deferred (\d+)", lines[0])
assert head, lines[0]
assert tuple(map(int, head.groups())) == (q["total"], q["ready"], q["deferred"]), (head.groups(), q)
i = next(n for n, l in enumerate(lines) if l.split()[:4] == ["lane", "queued", "ready", "deferred"])
rows = {int(c[0]): tuple(map(int, c[1:4])) for c in (l.split() for l in lines[i + 1:i + 11])}
want = {l["lane"]: (l["count"], l["ready"], l["deferred"]) for l in q["lanes"]}
assert rows == want, (rows, want)
assert sum(r[0] for r in rows.values()) == q["total"] == 10
assert want[0] == (3, 0, 3) and want[2] == (2, 2, 0), want
PY
check "top: header totals and every lane row match queue stats --json" \
    sh -c "'$LANEWAY' queue stats --config '$TOP_CFG' --json >'$WORK/top-stats.json' &&
        tmux -L '$TOP_SOCK' capture-pane -p -t top >'$WORK/top-pane.txt' &&
        /usr/bin/python3 '$WORK/top-compare.py' '$WORK/top-stats.json' '$WORK/top-pane.txt'"
check "top: the held destination and the hold are listed" wait_screen 'held +parked\.test'
check "top: slow.test listed with its 6 deferred" wait_screen '│slow\.test +0 +6 +0 +down'

# lane 9's detail: its destination and its message
tmux -L "$TOP_SOCK" send-keys -t top 9
check "top: 9 shows lane 9's messages" wait_screen 'deferred +1 u9@slow\.test'
tmux -L "$TOP_SOCK" send-keys -t top a

# resume parked.test: the busiest destination (slow.test, 6) is selected
# first, parked.test (4) is next; on it r asks, y does
tmux -L "$TOP_SOCK" send-keys -t top r
check "top: r on a destination no hold covers says so" wait_screen '^no hold covers that destination'
tmux -L "$TOP_SOCK" send-keys -t top Down r
check "top: r asks before resuming" wait_screen '^resume mail to parked\.test\? \(y/n\)'
check "top: nothing resumed before the answer" wait_stats 'q["suspended_domains"] == ["parked.test"]'
tmux -L "$TOP_SOCK" send-keys -t top y
check "top: y resumes parked.test and its 4 messages go" \
    wait_stats 'q["suspended_domains"] == [] and q["total"] == 6'
check "top: the screen follows (queued 6)" wait_screen '^laneway top  queued 6 '

# traffic: in and out rates appear while mail flows through
( for i in $(seq 1 15); do send_top 5 "f$i@flow.test"; sleep 0.2; done ) &
FLOW=$!
check "top: in and out rates above zero while mail flows" \
    wait_screen '  in (0\.[1-9]|[1-9][0-9]*\.[0-9])/s  out (0\.[1-9]|[1-9][0-9]*\.[0-9])/s'
wait "$FLOW" || true
check "top: the flow was delivered (queued back to 6)" wait_stats 'q["total"] == 6'

# suspend slow.test: s offers the selected destination's domain to edit
# (here replaced by typing), Enter confirms
tmux -L "$TOP_SOCK" send-keys -t top s
check "top: s asks which domain to suspend" wait_screen '^suspend mail to: [a-z.]+\.test_'
for _ in $(seq 1 30); do tmux -L "$TOP_SOCK" send-keys -t top BSpace; done
tmux -L "$TOP_SOCK" send-keys -t top -l slow.test
check "top: the domain is edited in the prompt" wait_screen '^suspend mail to: slow\.test_'
tmux -L "$TOP_SOCK" send-keys -t top Enter
check "top: Enter suspends slow.test" wait_stats 'q["suspended_domains"] == ["slow.test"]'
check "top: the screen says so" wait_screen 'held +slow\.test'

tmux -L "$TOP_SOCK" send-keys -t top q
check "top: q quits" sh -c "for i in \$(seq 1 50); do tmux -L '$TOP_SOCK' has-session -t top 2>/dev/null || exit 0; sleep 0.2; done; exit 1"
tmux -L "$TOP_SOCK" kill-server 2>/dev/null || true
check "top: --json is refused with a clear error (exit 2)" \
    sh -c "out=\$('$LANEWAY' top --json --config '$TOP_CFG' 2>&1); [ \$? = 2 ] && echo \"\$out\" | grep -q 'has no --json'"
