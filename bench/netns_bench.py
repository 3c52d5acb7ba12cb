#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""netns_bench.py — FAM arrays and a dataset query with the memory servers on
other hosts over tcp, beside the same with everything on one host over
loopback tcp, in the same run.

The hosts are network namespaces on a bridge (tests/netns/netns.py; needs
root). Two set-ups, each started fresh, same sizes, same client code:

  loopback   host 0 runs 2 famd (tcp, 127.0.0.1), kodiakd with 2 ranks
             (mpirun, btl tcp,self as across hosts) and the Python client
  hosts      famd on hosts 1 and 2, kodiakd's 2 ranks on hosts 3 and 4
             (mpirun through tests/netns/rsh_agent.sh), the client on host 0

Measured (best of --trials, wall time in the client):

  scatter    fa[idx] = vals      --m random indices into a FamArray of --n int64
  gather     fa[idx]
  page in    fa.to_pdarray()     the whole array
  ingest     store.ingest of --rows rows x 2 columns (int64, float64) from pdarrays
  query      v = ds["fare"]; v[v > 50].sum()   (read a column from FAM, filter)

Rates in M elements/s (rows/s for ingest and query); the last column is
hosts / loopback (< 1: slower across hosts). The veth pairs and bridge are
kernel memory copies, as loopback is: the difference is the path through
the network stack (bridge, veth, no loopback shortcuts) and the ranks being
in other namespaces, not wire bandwidth.

  /usr/bin/python3 bench/netns_bench.py [--n 2e7] [--m 2e6] [--rows 2e6] [--trials 3]
                                        [--order loopback,hosts]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))
import netns  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "python"))
from kodiak.launcher import mpi_defaults  # noqa: E402

BUILD = os.environ.get("KODIAK_BUILD", os.path.join(REPO, "build"))

CLIENT = r"""
import json, sys, time
import numpy as np
import kodiak as ak
n, m, rows, trials = {n}, {m}, {rows}, {trials}
ak.connect(connect_file={cf!r})
def best(fn):
    b = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t0)
    return b
rng = np.random.default_rng(7)
idx = ak.array(rng.integers(0, n, m)); vals = ak.array(rng.integers(0, 1 << 40, m))
fa = ak.fam_region("bench").create("a", ak.int64, n)
out = {{}}
def sc(): fa[idx] = vals
out["scatter"] = m / best(sc)
out["gather"] = m / best(lambda: fa[idx])
out["page in"] = n / best(lambda: fa.to_pdarray())
fare = rng.uniform(0, 100, rows)
data = {{"id": ak.arange(0, rows, 1), "fare": ak.array(fare)}}
store = ak.DatasetStore("bench")
k = [0]
def ing():
    k[0] += 1; store.ingest(f"T{{k[0]}}", data)
out["ingest"] = rows / best(ing)
ds = store["T1"]
got = [None]
def q():
    v = ds["fare"]; got[0] = float(v[v > 50].sum())
out["query"] = rows / best(q)
want = float(fare[fare > 50].sum())
assert abs(got[0] - want) <= 1e-9 * abs(want), (got[0], want)  # NumPy is the reference
print(json.dumps(out))
"""


class Setup:
    def __init__(self, c, name, d):
        self.c, self.name, self.dir, self.procs = c, name, d, []
        mem = (0, 0) if name == "loopback" else (1, 2)
        comp = (0,) if name == "loopback" else (3, 4)
        addrs = []
        for i, h in enumerate(mem):
            host = "127.0.0.1" if name == "loopback" else c.addr[h]
            log = open(os.path.join(d, f"{name}-famd{i}.log"), "w+")
            p = c.popen(h, [os.path.join(BUILD, "famd"), "--provider", "tcp", "--host", host,
                            "--port", "0", "--pool-size", "2G"], stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(p)
            addrs.append(self._ready(p, log))
        self.cf = os.path.join(d, f"{name}-connect.json")
        env = mpi_defaults(dict(os.environ, FAM_SERVERS=",".join(addrs), FAM_PROVIDER="tcp",
                                **c.env()))
        mpi = ["mpirun", "--bind-to", "none", "-x", "FAM_SERVERS", "-x", "FAM_PROVIDER",
               "-x", "PATH"]
        if name == "loopback":
            # the ranks talk over tcp in both set-ups (Open MPI's shared
            # memory btl would otherwise make this one differ in more than
            # where famd is)
            mpi += ["-np", "2", "--oversubscribe", "--mca", "btl", "tcp,self"]
            host = "127.0.0.1"
        else:
            hf = os.path.join(d, "hosts")
            with open(hf, "w") as f:
                f.writelines(f"{c.addr[h]} slots=1\n" for h in comp)
            mpi += ["--hostfile", hf, "-np", "2", "--mca", "plm_rsh_agent", netns.AGENT,
                    "--mca", "oob_tcp_if_include", "eth0", "--mca", "btl_tcp_if_include",
                    "eth0", "--mca", "btl", "tcp,self"]
            host = c.addr[comp[0]]
        log = open(os.path.join(d, f"{name}-kodiakd.log"), "w+")
        p = c.popen(comp[0], [*mpi, os.path.join(BUILD, "kodiakd"), "--host", host, "--port",
                              "0", "--connect-file", self.cf],
                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        deadline = time.time() + 90
        while not os.path.exists(self.cf):
            if p.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"kodiakd did not start: {log.read()}")
            time.sleep(0.1)
        time.sleep(0.3)

    @staticmethod
    def _ready(p, log):
        deadline = time.time() + 30
        while True:
            log.seek(0)
            for line in log.read().splitlines():
                if line.startswith("famd ready "):
                    return line.split()[2]
            if p.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"famd did not start: {log.read()}")
            time.sleep(0.05)

    def measure(self, a):
        code = CLIENT.format(n=a.n, m=a.m, rows=a.rows, trials=a.trials, cf=self.cf)
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
        r = self.c.run(0, ["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                       text=True, timeout=1800)
        if r.returncode:
            raise RuntimeError(f"{self.name}: client failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, default=2e7)
    ap.add_argument("--m", type=float, default=2e6)
    ap.add_argument("--rows", type=float, default=2e6)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--order", default="loopback,hosts",
                    help="which set-up runs first (to see order effects)")
    a = ap.parse_args()
    a.n, a.m, a.rows = int(a.n), int(a.m), int(a.rows)
    why = netns.available()
    if why:
        print(f"netns_bench: {why}")
        return 77
    res = {}
    load0 = os.getloadavg()
    with netns.Cluster(5) as c, tempfile.TemporaryDirectory(prefix="netns-bench-") as d:
        for name in a.order.split(","):
            s = Setup(c, name, d)
            try:
                res[name] = s.measure(a)
            finally:
                s.stop()
    load1 = os.getloadavg()
    print(f"netns_bench: n={a.n} m={a.m} rows={a.rows} trials={a.trials} (best of), tcp, "
          f"2 famd, kodiakd 2 ranks; load average {load0[0]:.1f} -> {load1[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'op':<10} {'loopback':>14} {'hosts':>14} {'hosts/loop':>11}")
    for op in ("scatter", "gather", "page in", "ingest", "query"):
        lo, hi = res["loopback"][op], res["hosts"][op]
        print(f"{op:<10} {lo / 1e6:>10.2f} M/s {hi / 1e6:>10.2f} M/s {hi / lo:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
