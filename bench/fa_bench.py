#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""fa_bench.py — FAM array rates (ak.fam_region / FamArray) beside baselines
measured in the same run.

For each rank count the bench starts a local cluster (2 famd, kodiakd under
mpirun; its own KODIAK_HOME, so it does not meet another cluster), creates a
FamArray of --n int64 and measures, best of --trials:

  op         what                             baseline (same run)
  scatter    fa[idx] = vals   (--m indices)   c[idx] = vals, c a pdarray of --n
  gather     fa[idx]                          c[idx]
  page out   fa[0:n] = pda                    memory servers' bare put (fam_bench,
  page in    fa.to_pdarray()                  1 MiB blocking, one client)
  gups       fa.add(idx, 1)                   np.add.at in this process

Rates: M elements/s and GiB/s. Bytes counted per element: 16 for scatter
and gather (an index and a value), 8 for paging and for GUPS updates.
The bare put/get are one process's rate to one famd; kodiakd's ranks run
in parallel and the array is striped over both famds.

  /usr/bin/python3 bench/fa_bench.py [--n 1e8] [--m 1e7] [--ranks 1,2] [--trials 3]
"""
import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
import kodiak as ak  # noqa: E402

GiB = float(1 << 30)


def best_of(trials, fn):
    best, out = float("inf"), None
    for _ in range(trials):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bare_bandwidth(build):
    """{'put': GB/s, 'get': GB/s} of libfam 1 MiB blocking transfers to one
    famd (shm), from bench/fam_bench; None if it cannot run."""
    exe = os.path.join(build, "bench", "fam_bench")
    try:
        out = subprocess.run([exe, "--no-bulk", "--sizes", "1M", "--providers", "shm",
                              "--trials", "3", "--idle-sec", "0", "--time-ms", "300",
                              "--no-striped"],
                             capture_output=True, text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    res = {}
    for op in ("put", "get"):
        m = re.search(rf"^{op}\s+shm\s+1 MiB\s+blocking\s+([\d.]+) GB/s", out, re.M)
        if m:
            res[op] = float(m.group(1))
    return res or None


def run(ranks, n, m, trials, rows):
    home = tempfile.mkdtemp(prefix="kodiak-fa-bench-")
    os.environ["KODIAK_HOME"] = home
    # each famd holds half of the array, plus room for its metadata
    pool_mb = (8 * n // 2) // (1 << 20) + 256
    ak.start(fam_servers=2, ranks=ranks, pool_size=f"{pool_mb}M")
    try:
        reg = ak.fam_region("bench", size=8 * n + (1 << 30))
        fa = reg.create("a", ak.int64, n)
        src = ak.arange(n)

        def page_out():
            fa[0:n] = src
        t, _ = best_of(trials, page_out)
        rows.append((ranks, "page out", n, 8, t, "bare put", None))
        del src
        gc.collect()
        t, p = best_of(trials, fa.to_pdarray)
        ok = p[n - 1] == n - 1 and p[0] == 0
        del p
        rows.append((ranks, "page in", n, 8, t, "bare get", None))
        if not ok:
            print("# WARNING: paged-in values are wrong", flush=True)

        idx = ak.randint(0, n, m, seed=1)
        vals = ak.randint(0, 2**62, m, seed=2)
        c = ak.zeros(n, ak.int64)

        def fsc():
            fa[idx] = vals

        def psc():
            c[idx] = vals
        t, _ = best_of(trials, fsc)
        tb, _ = best_of(trials, psc)
        rows.append((ranks, "scatter", m, 16, t, "pdarray c[idx] = v", tb))
        t, g = best_of(trials, lambda: fa[idx])
        del g
        tb, g = best_of(trials, lambda: c[idx])
        del g, c
        rows.append((ranks, "gather", m, 16, t, "pdarray c[idx]", tb))
        t, _ = best_of(trials, lambda: fa.add(idx, 1))
        ni = idx.to_ndarray()
        na = np.zeros(n, np.int64)
        tb, _ = best_of(1, lambda: np.add.at(na, ni, 1))
        del na, ni
        rows.append((ranks, "gups add", m, 8, t, "np.add.at (1 trial)", tb))
        del idx, vals
        fa.delete()
        reg.destroy()
    finally:
        ak.stop()
        shutil.rmtree(home, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=float, default=1e8, help="FamArray elements (int64)")
    p.add_argument("--m", type=float, default=1e7, help="random indices")
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--build", default=os.environ.get("KODIAK_BUILD",
                                                     os.path.join(REPO, "build")))
    args = p.parse_args()
    n, m = int(args.n), int(args.m)
    os.environ["KODIAK_BUILD"] = args.build
    print(f"# fa_bench: FamArray of {n:.3g} int64 on 2 famd (shm), {m:.3g} random indices, "
          f"best of {args.trials}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    bare = bare_bandwidth(args.build) or {}
    rows = []
    for r in (int(x) for x in args.ranks.split(",")):
        run(r, n, m, args.trials, rows)
    print(f"{'ranks':>5} {'op':<9} {'elements':>9} {'s':>8} {'M elem/s':>9} {'GiB/s':>7}   "
          f"{'baseline':<22} {'M elem/s':>9} {'GiB/s':>7} {'ratio':>6}")
    for ranks, op, count, per, t, base, tb in rows:
        rate, gibs = count / t / 1e6, count * per / t / GiB
        if tb is not None:
            brate, bgibs = count / tb / 1e6, count * per / tb / GiB
            bcols = f"{brate:>9.1f} {bgibs:>7.2f} {tb / t:>6.2f}"
        elif base.startswith("bare") and base.split()[1] in bare:
            bgibs = bare[base.split()[1]] * 1e9 / GiB
            bcols = f"{'':>9} {bgibs:>7.2f} {gibs / bgibs:>6.2f}"
        else:
            bcols = f"{'':>9} {'n/a':>7} {'':>6}"
        extra = f"  ({count / t / 1e9:.4f} GUPS)" if op.startswith("gups") else ""
        print(f"{ranks:>5} {op:<9} {count:>9.3g} {t:>8.3f} {rate:>9.1f} {gibs:>7.2f}   "
              f"{base:<22} {bcols}{extra}")


if __name__ == "__main__":
    main()
