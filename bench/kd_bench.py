#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kd_bench.py — Arkouda-style rates of kodiakd beside NumPy in the same run.

For each operation the table gives the bytes it counts, kodiak's best time of
--trials and its rate in GiB/s, NumPy's (pandas' for group-by) rate for the
same operation on the same data in this process, and kodiak/NumPy. The
stream row also shows a C STREAM triad over the same number of MPI ranks
(bench/stream_triad.c), the target's baseline.

  /usr/bin/python3 bench/kd_bench.py [--n 1e8] [--ranks 2] [--trials 3]
                                     [--ops stream,gather,...]

Byte counts (N elements of 8 bytes):
  stream   c = a + b * alpha         3 * 8N (read a, b; write c)
  gather   c = v[i]                  2 * 8N (read i, write c; v reads are random)
  scatter  c[i] = v                  2 * 8N (read i and v; writes are random)
  reduce   a.sum()                   8N
  scan     ak.cumsum(a)              2 * 8N
  argsort  ak.argsort(k)             8N keys, four rows: k random in [0, 2^16), in
                                     [0, 2^32), over all of int64, and float64
                                     normal; baseline numpy.argsort(kind="stable")
  groupby  GroupBy(k).sum(v)         2 * 8N (k random in [0, 2^20): ~1M groups)
  quantile ak.quantile(a, q), ak.percentile(a, q, method="hazen"), ak.median(a)
                                     8N (q: 5 values); baseline the same NumPy call
  rng      default_rng(1).integers / random / standard_normal / exponential /
           permutation / choice(N, N/10, replace=False)
                                     8N written; baseline numpy.random.default_rng
  to_ak    ak.array(ndarray)         8N, baseline ndarray.copy()
  to_np    pdarray.to_ndarray()      8N, baseline ndarray.copy()
  axis     a.sum(axis=0), a.min(axis=-1, keepdims=True), a.std(axis=0),
           ak.cumsum(a, axis=0), ak.maximum(a, b), ak.arctan2(a, b)
                                     8N per input read (scans and the binary
                                     functions also count the 8N written);
                                     baseline the same call on ndarrays
"""
import argparse
import gc
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
import kodiak as ak  # noqa: E402

GiB = float(1 << 30)


def best_of(trials, fn, setup=None):
    """Best wall time of fn() over trials (setup() untimed before each)."""
    best = float("inf")
    out = None
    for _ in range(trials):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        out = fn(arg) if setup else fn()
        best = min(best, time.perf_counter() - t0)
        del arg
    return best, out


def mpi_env():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def c_triad(build, n, ranks):
    exe = os.path.join(build, "bench", "stream_triad")
    out = subprocess.run(["mpirun", "-np", str(ranks), "--bind-to", "none", "--oversubscribe",
                          exe, str(n), "5"], capture_output=True, text=True, env=mpi_env(),
                         check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("triad")][0].split()
    return float(line[4])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=float, default=1e8)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--ops", default="stream,gather,scatter,reduce,scan,argsort,groupby,"
                                    "to_ak,to_np")  # also: quantile, rng
    p.add_argument("--build", default=os.environ.get("KODIAK_BUILD",
                                                     os.path.join(REPO, "build")))
    args = p.parse_args()
    n = int(args.n)
    ops = args.ops.split(",")
    os.environ["KODIAK_BUILD"] = args.build
    rows = []
    print(f"# kd_bench: N = {n:.3g}, {args.ranks} ranks, best of {args.trials}; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    ak.start(fam_servers=0, ranks=args.ranks)
    try:
        rng = np.random.default_rng(1)
        for op in ops:
            gc.collect()
            if op == "stream":
                a, b = ak.uniform(n, seed=1), ak.uniform(n, seed=2)
                t, c = best_of(max(args.trials, 5), lambda: a + b * 3.0)
                del c
                na, nb = a.to_ndarray(), b.to_ndarray()
                tn, c = best_of(args.trials, lambda: na + nb * 3.0)
                del a, b, na, nb, c
                gbs = c_triad(args.build, n, args.ranks)
                rows.append(("stream", 24 * n, t, tn, f"C triad {gbs * 1e9 / GiB:.2f} GiB/s",
                             (24 * n / t) / (gbs * 1e9), 0.70))
            elif op in ("gather", "scatter"):
                v = ak.randint(0, 2**62, n, seed=3)
                i = ak.randint(0, n, n, seed=4)
                nv, ni = v.to_ndarray(), i.to_ndarray()
                if op == "gather":
                    t, c = best_of(args.trials, lambda: v[i])
                    tn, c = best_of(args.trials, lambda: nv[ni])
                else:
                    c = ak.zeros(n, ak.int64)
                    nc = np.zeros(n, np.int64)

                    def ksc():
                        c[i] = v

                    def nsc():
                        nc[ni] = nv
                    t, _ = best_of(args.trials, ksc)
                    tn, _ = best_of(args.trials, nsc)
                    del nc
                del v, i, nv, ni, c
                rows.append((op, 16 * n, t, tn, "", None, 1.0 if op == "gather" else None))
            elif op in ("reduce", "scan"):
                a = ak.uniform(n, seed=5)
                na = a.to_ndarray()
                if op == "reduce":
                    t, _ = best_of(args.trials, lambda: a.sum())
                    tn, _ = best_of(args.trials, lambda: na.sum())
                    nb = 8 * n
                else:
                    t, c = best_of(args.trials, lambda: ak.cumsum(a))
                    del c
                    tn, c = best_of(args.trials, lambda: np.cumsum(na))
                    del c
                    nb = 16 * n
                del a, na
                rows.append((op, nb, t, tn, "", None, None))
            elif op == "argsort":
                # the cost of a radix sort grows with the key bits that vary,
                # and should not otherwise depend on the data
                for label, make in (
                        ("argsort <2^16", lambda: ak.randint(0, 2**16, n, seed=6)),
                        ("argsort <2^32", lambda: ak.randint(0, 2**32, n, seed=6)),
                        ("argsort int64", lambda: ak.randint(-2**63, 2**63, n, seed=6)),
                        ("argsort f64", lambda: ak.standard_normal(n, seed=6))):
                    k = make()
                    nk = k.to_ndarray()
                    t, p_ = best_of(args.trials, lambda: ak.argsort(k))
                    del p_
                    tn, p_ = best_of(1, lambda: np.argsort(nk, kind="stable"))
                    del p_, k, nk
                    rows.append((label, 8 * n, t, tn, "numpy.argsort stable (1 trial)", None,
                                 1.5))
                    print(f"  {label}: kodiak {8 * n / t / GiB:.2f} GiB/s, baseline "
                          f"{8 * n / tn / GiB:.2f} GiB/s", file=sys.stderr, flush=True)
                continue
            elif op == "groupby":
                import pandas as pd
                k = ak.randint(0, 2**20, n, seed=7)
                v = ak.randint(0, 1000, n, seed=8)
                df = pd.DataFrame({"k": k.to_ndarray(), "v": v.to_ndarray()})
                t, r = best_of(args.trials, lambda: ak.GroupBy(k).sum(v))
                del r
                tn, r = best_of(args.trials, lambda: df.groupby("k")["v"].sum())
                del r, k, v, df
                rows.append(("groupby sum", 16 * n, t, tn, "pandas groupby.sum", None, None))
            elif op in ("quantile", "rng"):
                if op == "quantile":
                    a = ak.standard_normal(n, seed=12)
                    na = a.to_ndarray()
                    q = [0.01, 0.25, 0.5, 0.75, 0.99]
                    cases = (("quantile", lambda: ak.quantile(a, q), lambda: np.quantile(na, q)),
                             ("pctl hazen", lambda: ak.percentile(a, 37.5, method="hazen"),
                              lambda: np.percentile(na, 37.5, method="hazen")),
                             ("median", lambda: ak.median(a), lambda: np.median(na)))
                else:
                    g, gn = ak.random.default_rng(1), np.random.default_rng(1)
                    cases = (("rng integers", lambda: g.integers(0, 1000, n),
                              lambda: gn.integers(0, 1000, n)),
                             ("rng random", lambda: g.random(n), lambda: gn.random(n)),
                             ("rng normal", lambda: g.standard_normal(n),
                              lambda: gn.standard_normal(n)),
                             ("rng expon", lambda: g.exponential(1.0, n),
                              lambda: gn.exponential(1.0, n)),
                             ("rng permut", lambda: g.permutation(n), lambda: gn.permutation(n)),
                             ("rng choice", lambda: g.choice(n, n // 10, replace=False),
                              lambda: gn.choice(n, n // 10, replace=False)))
                for label, kfn, nfn in cases:
                    t, r_ = best_of(args.trials, kfn)
                    del r_
                    tn, r_ = best_of(args.trials, nfn)
                    del r_
                    rows.append((label, 8 * n, t, tn, "", None, None))
                    print(f"  {label}: kodiak {8 * n / t / GiB:.2f} GiB/s, baseline "
                          f"{8 * n / tn / GiB:.2f} GiB/s", file=sys.stderr, flush=True)
                continue
            elif op == "to_ak":
                na = rng.random(n)
                t, a = best_of(args.trials, lambda: ak.array(na))
                del a
                tn, c = best_of(args.trials, lambda: na.copy())
                del c, na
                rows.append(("to_ak", 8 * n, t, tn, "ndarray.copy()", None, "1 GB/s"))
            elif op == "to_np":
                a = ak.uniform(n, seed=9)
                t, c = best_of(args.trials, lambda: a.to_ndarray())
                del c
                na = np.random.default_rng(2).random(n)
                tn, c = best_of(args.trials, lambda: na.copy())
                del c, na, a
                rows.append(("to_np", 8 * n, t, tn, "ndarray.copy()", None, "1 GB/s"))
            elif op == "axis":
                a, b = ak.uniform(n, seed=10), ak.uniform(n, seed=11)
                na, nb = a.to_ndarray(), b.to_ndarray()
                for label, nbytes, kfn, nfn in (
                        ("sum axis=0", 8 * n, lambda: a.sum(axis=0), lambda: na.sum(axis=0)),
                        ("min keepdims", 8 * n, lambda: a.min(axis=-1, keepdims=True),
                         lambda: na.min(axis=-1, keepdims=True)),
                        ("std axis=0", 8 * n, lambda: a.std(axis=0), lambda: na.std(axis=0)),
                        ("cumsum ax=0", 16 * n, lambda: ak.cumsum(a, axis=0),
                         lambda: np.cumsum(na, axis=0)),
                        ("maximum", 24 * n, lambda: ak.maximum(a, b), lambda: np.maximum(na, nb)),
                        ("arctan2", 24 * n, lambda: ak.arctan2(a, b),
                         lambda: np.arctan2(na, nb))):
                    t, r_ = best_of(args.trials, kfn)
                    del r_
                    tn, r_ = best_of(args.trials, nfn)
                    del r_
                    rows.append((label, nbytes, t, tn, "", None, None))
                    print(f"  {label}: kodiak {nbytes / t / GiB:.2f} GiB/s, baseline "
                          f"{nbytes / tn / GiB:.2f} GiB/s", file=sys.stderr, flush=True)
                del a, b, na, nb
                continue
            else:
                raise SystemExit(f"unknown op {op}")
            r = rows[-1]
            print(f"  {r[0]}: kodiak {r[1] / r[2] / GiB:.2f} GiB/s, baseline "
                  f"{r[1] / r[3] / GiB:.2f} GiB/s", file=sys.stderr, flush=True)
    finally:
        ak.stop()

    print(f"{'op':<12} {'bytes':>9} {'kodiak s':>9} {'kodiak GiB/s':>13} {'NumPy GiB/s':>12} "
          f"{'ratio':>6}  target / note")
    for name, nbytes, t, tn, note, ratio, target in rows:
        kr, nr = nbytes / t / GiB, nbytes / tn / GiB
        ratio_np = tn / t
        tgt = ""
        if name == "stream":
            tgt = f"{'ok' if ratio >= target else 'MISSED'} ({ratio:.2f} of C triad, >= {target})"
        elif isinstance(target, float):
            tgt = f"{'ok' if ratio_np >= target else 'MISSED'} (>= {target} x NumPy)"
        elif isinstance(target, str):
            gbs = nbytes / t / 1e9
            tgt = f"{'ok' if gbs >= 1.0 else 'MISSED'} ({gbs:.2f} GB/s, >= {target})"
        print(f"{name:<12} {nbytes / 1e9:>7.2f}GB {t:>9.3f} {kr:>13.2f} {nr:>12.2f} "
              f"{ratio_np:>6.2f}  {tgt} {note}".rstrip())


if __name__ == "__main__":
    main()
