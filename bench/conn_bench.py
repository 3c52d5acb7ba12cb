#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""conn_bench.py — what one client connection costs famd, what one memory
server costs a client, and what famd --auth munge adds to connecting.

Three tables, each with its baseline measured in the same run:
  1. famd with N clients (N = 1..64, separate processes, each connected
     over TCP as a remote client: FAM_CONTROL=tcp, provider tcp, and each
     having done a put and a get so that the data path is connected too):
     famd's resident memory (VmRSS), open file descriptors and threads,
     beside famd with no client (the baseline); per client = the increase
     divided by N.
  2. One client connected to S memory servers (S = 1..8): the client's own
     VmRSS and descriptors after fam_initialize and a put/get to each,
     beside the same process before fam_initialize (baseline).
  3. fam_initialize + fam_finalize to one famd over TCP, median of --reps,
     with famd --auth munge (a credential from the bench's own munged)
     beside --auth none: the time of the exchange, and the ratio.

    KODIAK_BUILD=build /usr/bin/python3 bench/conn_bench.py
        [--clients 1,2,4,8,16,32,64] [--servers 1,2,4,8] [--reps 30]

Clients are Python processes driving libfam through ctypes; what they
measure of themselves is the increase over their own start, so the
interpreter's size does not count."""
import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.environ.get("KODIAK_BUILD", os.path.join(REPO, "build"))
FAMD = os.path.join(BUILD, "famd")
LIBFAM = os.path.join(BUILD, "libfam.so")

# A client: connect (fam_initialize), look up the shared item on every
# server, put and get 4 KiB on each, report its own cost, then wait for a
# line on stdin (so that famd can be measured with all clients connected).
CLIENT = r"""
import ctypes, json, os, sys, time
def rss():
    for l in open("/proc/self/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
def fds(): return len(os.listdir("/proc/self/fd"))
lib = ctypes.CDLL(sys.argv[1])
lib.fam_last_error.restype = ctypes.c_char_p
mode, nsrv = sys.argv[2], int(sys.argv[3])
def check(rc, what):
    if rc:
        sys.stderr.write(f"{what}: {lib.fam_last_error().decode()}\n"); sys.exit(1)
if mode == "time":
    reps, ts = int(sys.argv[4]), []
    for _ in range(reps):
        f = ctypes.c_void_p(); t0 = time.perf_counter()
        check(lib.fam_initialize(None, ctypes.byref(f)), "init")
        ts.append(time.perf_counter() - t0); lib.fam_finalize(f)
    print(json.dumps({"times": ts})); sys.exit(0)
r0, f0 = rss(), fds()
f = ctypes.c_void_p()
check(lib.fam_initialize(None, ctypes.byref(f)), "init")
n = 4096 * nsrv  # striped 4 KiB per server: touches every one
buf = ctypes.create_string_buffer(n)
d = ctypes.c_void_p()
check(lib.fam_lookup(f, b"shared", b"bench", ctypes.byref(d)), "lookup")
check(lib.fam_put_blocking(f, buf, d, ctypes.c_uint64(0), ctypes.c_uint64(n)), "put")
check(lib.fam_get_blocking(f, buf, d, ctypes.c_uint64(0), ctypes.c_uint64(n)), "get")
print(json.dumps({"rss_kib": rss() - r0, "fds": fds() - f0}), flush=True)
sys.stdin.readline()
lib.fam_finalize(f)
"""

# Setup: the region "bench" striped over every server (4 KiB stripes) and
# an item "shared" (0666) of 4 KiB per server.
SETUP = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.fam_last_error.restype = ctypes.c_char_p
f, r = ctypes.c_void_p(), ctypes.c_void_p()
class Attr(ctypes.Structure):
    _fields_ = [("memory_type", ctypes.c_int), ("interleave", ctypes.c_int),
                ("stripe_size", ctypes.c_uint64)]
assert lib.fam_initialize(None, ctypes.byref(f)) == 0, lib.fam_last_error()
n = int(sys.argv[2])
attr = Attr(0, 1 if n > 1 else 0, 4096)
assert lib.fam_create_region(f, b"bench", 1 << 20, 0o777, ctypes.byref(attr),
                             ctypes.byref(r)) == 0, lib.fam_last_error()
d = ctypes.c_void_p()
assert lib.fam_allocate(f, b"shared", 4096 * n, 0o666, r, ctypes.byref(d)) == 0, \
    lib.fam_last_error()
lib.fam_finalize(f)
"""


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads"):
                out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


class Famd:
    def __init__(self, tmp, *args):
        self.log = open(os.path.join(tmp, f"famd{secrets.token_hex(3)}.log"), "w+")
        self.p = subprocess.Popen([FAMD, "--port", "0", "--pool-size", "16M", "--provider",
                                   "tcp", "--host", "127.0.0.1", *args],
                                  stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.time() + 30
        while True:
            self.log.seek(0)
            lines = [x for x in self.log.read().splitlines() if x.startswith("famd ready ")]
            if lines:
                self.addr = lines[0].split()[2]
                break
            if self.p.poll() is not None or time.time() > deadline:
                self.log.seek(0)
                raise RuntimeError("famd did not start: " + self.log.read())
            time.sleep(0.05)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Munged:
    def __init__(self, tmp):
        d = os.path.join(tmp, "munge")
        os.mkdir(d, 0o755)
        self.socket = os.path.join(d, "munge.socket")
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(secrets.token_bytes(1024))
        os.chmod(key, 0o600)
        self.p = subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={self.socket}",
             f"--key-file={key}", f"--pid-file={d}/pid", f"--log-file={d}/log",
             f"--seed-file={d}/seed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.time() + 30
        while not os.path.exists(self.socket):
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError("munged did not start")
            time.sleep(0.02)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(20)


def env_for(famds, munge_socket=None):
    e = dict(os.environ, FAM_SERVERS=",".join(f.addr for f in famds), FAM_PROVIDER="tcp",
             FAM_CONTROL="tcp")
    if munge_socket:
        e["FAM_MUNGE_SOCKET"] = munge_socket
    return e


def setup(famds):
    subprocess.run([sys.executable, "-c", SETUP, LIBFAM, str(len(famds))],
                   env=env_for(famds), check=True)


def start_clients(n, famds):
    """n connected clients; returns (processes, their own reports)."""
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, LIBFAM, "hold", str(len(famds))],
                              env=env_for(famds), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    reports = []
    for p in procs:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("a client failed to connect")
        reports.append(json.loads(line))
    return procs, reports


def release(procs):
    for p in procs:
        p.stdin.write("\n")
        p.stdin.close()
    for p in procs:
        p.wait(60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="1,2,4,8,16,32,64")
    ap.add_argument("--servers", default="1,2,4,8")
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}, {os.cpu_count()} cores")
    tmp = tempfile.mkdtemp(prefix="kodiak-conn-bench-")
    famds, munged = [], None
    try:
        # ---- 1. famd per client connection --------------------------------
        famds.append(Famd(tmp))
        setup(famds)
        pid = famds[0].p.pid
        time.sleep(0.5)
        base = proc_status(pid)
        print("\n1. famd (tcp) with N remote clients connected (control socket + data path)")
        print(f"{'clients':>7} {'famd RSS MiB':>13} {'fds':>5} {'threads':>7} "
              f"{'RSS/client KiB':>15} {'fds/client':>10} {'marginal KiB':>13}")
        print(f"{0:>7} {base['VmRSS'] / 1024:>13.1f} {base['fds']:>5} {base['Threads']:>7}"
              f"{'(baseline)':>16}")
        client_reports, first = {}, None
        for n in [int(x) for x in a.clients.split(",")]:
            procs, reps = start_clients(n, famds)
            time.sleep(0.3)
            st = proc_status(pid)
            release(procs)
            client_reports[n] = reps
            # marginal: per client beyond the first (which pays famd's
            # one-time fabric allocations)
            marg = "" if first is None or n == first[0] else \
                f"{(st['VmRSS'] - first[1]) / (n - first[0]):>13.1f}"
            if first is None:
                first = (n, st["VmRSS"])
            print(f"{n:>7} {st['VmRSS'] / 1024:>13.1f} {st['fds']:>5} {st['Threads']:>7} "
                  f"{(st['VmRSS'] - base['VmRSS']) / n:>15.1f} "
                  f"{(st['fds'] - base['fds']) / n:>10.2f} {marg}")
        time.sleep(0.5)
        after = proc_status(pid)
        print(f"  after all clients left: famd RSS {after['VmRSS'] / 1024:.1f} MiB, "
              f"{after['fds']} fds (baseline {base['VmRSS'] / 1024:.1f} MiB, {base['fds']})")
        allr = [r for v in client_reports.values() for r in v]
        print(f"  each client, 1 server: +{statistics.median(r['rss_kib'] for r in allr):.0f} KiB "
              f"RSS (median of {len(allr)}), +{statistics.median(r['fds'] for r in allr):.0f} fds")
        famds[0].stop()
        famds = []

        # ---- 2. a client per memory server --------------------------------
        print("\n2. one client connected to S memory servers (tcp), its own increase "
              "over its start (baseline: 0)")
        print(f"{'servers':>7} {'client +RSS KiB':>16} {'+fds':>5} {'RSS/server KiB':>15} "
              f"{'fds/server':>10}")
        for s in [int(x) for x in a.servers.split(",")]:
            famds = [Famd(tmp) for _ in range(s)]
            try:
                setup(famds)
                procs, reps = start_clients(1, famds)
                release(procs)
            finally:
                for f in famds:
                    f.stop()
                famds = []
            r = reps[0]
            print(f"{s:>7} {r['rss_kib']:>16} {r['fds']:>5} {r['rss_kib'] / s:>15.1f} "
                  f"{r['fds'] / s:>10.2f}")

        # ---- 3. the cost of --auth munge at connect -----------------------
        munged = Munged(tmp)
        print(f"\n3. fam_initialize + fam_finalize, 1 famd over tcp, median of {a.reps}")
        res = {}
        for auth in ("none", "munge"):
            f = Famd(tmp, "--auth", auth, "--munge-socket", munged.socket)
            try:
                r = subprocess.run([sys.executable, "-c", CLIENT, LIBFAM, "time", "1",
                                    str(a.reps)], env=env_for([f], munged.socket),
                                   capture_output=True, text=True, check=True)
                res[auth] = json.loads(r.stdout)["times"]
            finally:
                f.stop()
        m0, m1 = statistics.median(res["none"]), statistics.median(res["munge"])
        print(f"{'famd --auth none (baseline)':<30} {m0 * 1e3:>8.2f} ms")
        print(f"{'famd --auth munge':<30} {m1 * 1e3:>8.2f} ms   ratio {m1 / m0:.2f}   "
              f"(+{(m1 - m0) * 1e3:.2f} ms per connection)")
    finally:
        for f in famds:
            f.stop()
        if munged:
            munged.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
