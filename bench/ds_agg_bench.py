#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ds_agg_bench.py — aggregations of a dataset in FAM (ds.sum, ds.groupby(...)
.mean, value_counts, ...; computed batch by batch by kodiakd) beside pandas
on the same data as an in-memory DataFrame, in the same run; and the same
queries from a second kodiakd whose --memory-limit is a quarter of the
dataset (the data pass through its bounded window) beside the first.

The data: --rows rows of a taxi-like table, `zone` int64 (263 values),
`fare` float64 (1% NaN), `flag` text (3 values), made with NumPy (seeded),
ingested once into a store on 2 famd (volatile pools) by kodiakd A (no
memory limit) in batches of --batch-rows (default: 1048576, or an eighth of
the rows when that is less; any size works: B gathers a column through an
index a window of rows at a time, never a batch whole). Kodiakd B (same
rank count) is attached to the same famd with --memory-limit = (dataset
bytes / 4) / ranks, so the dataset is 4x what all its ranks may hold. Each figure is the best
of --trials wall times; the pandas time is the query alone on a DataFrame
already in memory (no read). kodiakd folds every batch each time (the
request option cache: false): a repeated query would otherwise merge the
per-batch partial results it kept the first time; the last row shows that.

  /usr/bin/python3 bench/ds_agg_bench.py [--rows 1e7] [--ranks 2] [--trials 3]
                                         [--batch-rows N]

Not part of `make test`."""
import argparse
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))
os.environ.setdefault("KODIAK_BUILD", os.path.join(REPO, "build"))
import numpy as np  # noqa: E402

import kodiak as ak  # noqa: E402
from conftest import Server  # noqa: E402
from fam_fixtures import FamServers  # noqa: E402


def best_of(trials, fn):
    best, out = float("inf"), None
    for _ in range(trials):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


QUERIES = [
    ("sum(fare)", lambda t: t.sum("fare"), lambda df: df["fare"].sum()),
    ("mean(fare)", lambda t: t.mean("fare"), lambda df: df["fare"].mean()),
    ("std(fare)", lambda t: t.std("fare"), lambda df: df["fare"].std()),
    ("nunique(zone)", lambda t: t.nunique("zone"), lambda df: df["zone"].nunique()),
    ("value_counts(flag)", lambda t: t.value_counts("flag"),
     lambda df: df["flag"].value_counts()),
    ("groupby(zone).mean(fare)", lambda t: t.groupby("zone").mean("fare"),
     lambda df: df.groupby("zone")["fare"].mean()),
    ("groupby(zone,flag) count+mean+max", lambda t: t.groupby(["zone", "flag"])["fare"]
     .agg(["count", "mean", "max"]),
     lambda df: df.groupby(["zone", "flag"])["fare"].agg(["count", "mean", "max"])),
    # the same two group-bys with the server's hash table alone (no direct-indexed
    # table for the small keys): what the direct table saves, in the same run
    ("  the same, hash table only", lambda t: hash_only(
        lambda: t.groupby("zone").mean("fare")),
     lambda df: df.groupby("zone")["fare"].mean()),
    ("  the same, hash table only ", lambda t: hash_only(
        lambda: t.groupby(["zone", "flag"])["fare"].agg(["count", "mean", "max"])),
     lambda df: df.groupby(["zone", "flag"])["fare"].agg(["count", "mean", "max"])),
    # a derived dataset: rows with fare > 20 (an index), f2 = fare * 2 derived on it,
    # grouped by zone gathered through the index (pandas: on the derived frame, made
    # beforehand, so the query alone)
    ("filtered: groupby(zone).mean(f2)", lambda t: t.store[BIG].groupby("zone").mean("f2"),
     lambda df: DERIVED["big"].groupby("zone")["f2"].mean()),
    # the same again, from the per-batch partial results kodiakd kept
    ("  the same, kept partials", lambda t: cached(
        lambda: t.store[BIG].groupby("zone").mean("f2")),
     lambda df: DERIVED["big"].groupby("zone")["f2"].mean()),
]
BIG = "Trip.fare_gt_20"
DERIVED = {}


def hash_only(fn):
    """fn() with kodiakd's group-by on its hash table alone."""
    from kodiak import ds_agg
    ds_agg._table = "hash"
    try:
        return fn()
    finally:
        ds_agg._table = "auto"


def cached(fn):
    """fn() with kodiakd's kept per-batch partial results (the first call
    keeps them)."""
    from kodiak import ds_agg
    ds_agg._cache = True
    try:
        return fn()
    finally:
        ds_agg._cache = False


def main():
    from kodiak import ds_agg
    ds_agg._cache = False  # every batch folded (see above)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=1e7)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--batch-rows", type=int, default=None)
    args = p.parse_args()
    import pandas as pd
    n = int(args.rows)
    if args.batch_rows is None:
        args.batch_rows = min(1 << 20, max(1024, n // 8))
    rng = np.random.default_rng(14)
    fare = rng.gamma(2.0, 7.0, n)
    fare[rng.random(n) < 0.01] = np.nan
    df = pd.DataFrame({"zone": rng.integers(1, 264, n), "fare": fare,
                       "flag": np.array(["N", "Y", "U"], dtype=object)[rng.integers(0, 3, n)]})
    nbytes = n * 24
    limit = max(1 << 20, nbytes // 4 // args.ranks)
    pool = f"{max(1, int(nbytes * 1.5 / 2 / (1 << 30)) + 1)}G"
    print(f"# ds_agg_bench: {n} rows x 3 columns ({nbytes / 1e6:.0f} MB in FAM), batches of "
          f"{args.batch_rows} rows, {args.ranks} rank(s), 2 famd (shm); B's --memory-limit "
          f"{limit} bytes per rank (dataset = 4x B's total); best of {args.trials}; load "
          f"average at start {os.getloadavg()[0]:.2f}", flush=True)
    famd = FamServers(2, pool_size=pool)
    servers = []
    try:
        env = {"FAM_SERVERS": famd.servers}
        a = Server(args.ranks, env=env)
        servers.append(a)
        b = Server(args.ranks, args=["--memory-limit", str(limit)], env=env)
        servers.append(b)
        ak.connect(connect_file=a.connect_file)
        store = ak.DatasetStore("aggbench")
        t0 = time.perf_counter()
        step = 1 << 22  # each ingest call: 4M rows of Python data
        for at in range(0, n, step):
            t = store.ingest("Trip", df.iloc[at:at + step], batch_rows=args.batch_rows,
                             progress=False)
        ti = time.perf_counter() - t0
        print(f"ingest (from a DataFrame): {ti:.2f} s, {t.num_batches} batches", flush=True)
        t0 = time.perf_counter()
        big = t.filter("fare", "gt", 20)
        big.derive("f2", big.col("fare") * 2.0)
        sel = df[df.fare > 20]
        DERIVED["big"] = sel.assign(f2=sel.fare * 2.0)
        print(f"filter + derive: {time.perf_counter() - t0:.2f} s", flush=True)
        res = {}
        for label, srv in (("A", a), ("B", b)):
            ak.disconnect()
            ak.connect(connect_file=srv.connect_file)
            t = ak.DatasetStore("aggbench", create=False)["Trip"]
            for name, q, _ in QUERIES:
                res[(label, name)] = best_of(args.trials, lambda: q(t))
        ak.disconnect()
        print(f"{'query':<36}{'pandas':>9}{'kodiak A':>10}{'A/pandas':>10}"
              f"{'B (4x mem)':>12}{'B/A':>7}   (A/pandas, B/A: speed ratios, >1 = faster)")
        for name, _, pq in QUERIES:
            tp, exp = best_of(args.trials, lambda: pq(df))
            ta, got = res[("A", name)]
            tb, gotb = res[("B", name)]
            for g in (got, gotb):  # the answers are pandas'
                if isinstance(exp, (pd.Series, pd.DataFrame)):
                    e = exp.sort_index() if name.startswith("value") else exp
                    gg = g.sort_index() if name.startswith("value") else g
                    np.testing.assert_allclose(np.asarray(gg, dtype=float),
                                               np.asarray(e, dtype=float), rtol=1e-9)
                else:
                    assert np.isclose(g, exp, rtol=1e-9), (name, g, exp)
            print(f"{name:<36}{tp:>8.3f}s{ta:>9.3f}s{tp / ta:>10.2f}{tb:>11.3f}s{ta / tb:>7.2f}",
                  flush=True)
        print(f"# load average at end {os.getloadavg()[0]:.2f}")
    finally:
        try:
            ak.disconnect()
        except Exception:
            pass
        for s in servers:
            s.stop()
        famd.stop()


if __name__ == "__main__":
    main()
