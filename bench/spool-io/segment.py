#!/usr/bin/env python3
# segment.py THREADS N DIR: the same 4 KiB messages appended to one segment file,
# each writer waiting for an fdatasync that covers its bytes (group commit:
# whoever finds no sync running becomes the leader and syncs all written so far)
import os, sys, threading, time, itertools
T, N, D = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(D, exist_ok=True)
fd = os.open(f"{D}/segment", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
data = b"x" * 4096
ctr = itertools.count()
cv = threading.Condition()
st = {"written": 0, "synced": 0, "syncing": False, "off": 0, "syncs": 0}
def one():
    with cv:
        off = st["off"]; st["off"] += len(data)
    os.pwrite(fd, data, off)
    with cv:
        st["written"] += 1
        me = st["written"]  # conservative: covered once synced >= all writes counted so far
        while st["synced"] < me:
            if not st["syncing"]:
                st["syncing"] = True
                target = st["written"]
                cv.release()
                try:
                    os.fdatasync(fd)
                finally:
                    cv.acquire()
                st["synced"] = max(st["synced"], target); st["syncing"] = False; st["syncs"] += 1
                cv.notify_all()
            else:
                cv.wait()
def worker():
    while next(ctr) < N: one()
t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(T)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.time() - t0; r = os.times()
print(f"mode=segment threads={T} n={N} rate={N/dt:.0f}/s cpu_us_per_msg={(r.user+r.system)*1e6/N:.0f} syncs={st['syncs']}")
