#!/usr/bin/env python3
# files.py MODE THREADS N DIR: N 4 KiB "messages" written durably by THREADS
# threads, each later deleted (as delivery would), the way the spool does:
#  new:     create temp beside dest, write, fsync, rename, fsync dir; delete = unlink
#  recycle: take a recycled file from free/, overwrite, truncate, fsync, rename
#           into place, fsync dir; delete = rename back into free/
import os, sys, threading, time, itertools
mode, T, N, D = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(D + "/free", exist_ok=True)
for s in range(64): os.makedirs(f"{D}/{s:02x}", exist_ok=True)
data = b"x" * 4096
ctr = itertools.count()
free = []; lock = threading.Lock()
live = []  # written, to delete later (delivery lag)
def dirfsync(p):
    fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.close(fd)
def one(i):
    dest = f"{D}/{(i*2654435761)%64:02x}/{i}"
    src = None
    if mode == "recycle":
        with lock:
            src = free.pop() if free else None
    if src is None:
        src = dest + ".tmp"
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    else:
        fd = os.open(src, os.O_WRONLY)
    os.pwrite(fd, data, 0); os.ftruncate(fd, len(data)); os.fsync(fd); os.close(fd)
    os.rename(src, dest); dirfsync(os.path.dirname(dest))
    with lock:
        live.append(dest)
        old = live.pop(0) if len(live) > 200 else None
    if old:
        if mode == "recycle":
            f = f"{D}/free/{old.rsplit('/',1)[1]}"
            os.rename(old, f)
            with lock: free.append(f)
        else:
            os.unlink(old)
def worker():
    while True:
        i = next(ctr)
        if i >= N: return
        one(i)
t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(T)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.time() - t0
r = os.times()
print(f"mode={mode} threads={T} n={N} rate={N/dt:.0f}/s cpu_us_per_file={(r.user+r.system)*1e6/N:.0f}")
