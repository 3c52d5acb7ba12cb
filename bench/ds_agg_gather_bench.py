#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ds_agg_gather_bench.py — aggregations through a filter (an index
dataset), whose columns kodiakd gathers from the base a window of rows at
a time, beside pandas on the same filtered DataFrame (in memory, made
beforehand: the query alone), in the same run.

The data: --rows rows, `x` float64 (normal), `k` int64 (200 values), made
with NumPy (seeded), ingested into a store on one famd in batches of
--batch-rows by kodiakd A (no memory limit). Two filters: `x > -0.5` (69%
of the rows: dense, the spans read and the rows picked out) and `x > 2.5`
(0.6%: sparse, read by index). Kodiakd B (same rank count, same famd) has
--memory-limit --limit bytes per rank; with the defaults a batch of the
dense filter's index alone (5.5 MB) is most of it: kodiakd before the
windowed gather answered B with a MemoryError ("ingest smaller batches").
Each figure is the best of --trials wall times; kodiakd folds every batch
each time (the request option cache: false).

  /usr/bin/python3 bench/ds_agg_gather_bench.py [--rows 4e6] [--batch-rows 1000000]
                                                [--ranks 2] [--limit 8e6] [--trials 7]

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
import pandas as pd  # noqa: E402

import kodiak as ak  # noqa: E402
from conftest import Server  # noqa: E402
from fam_fixtures import FamServers  # noqa: E402

FILTERS = [("dense x > -0.5", -0.5), ("sparse x > 2.5", 2.5)]
QUERIES = [("groupby(k).mean(x)", lambda f: f.groupby("k").mean("x"),
            lambda d: d.groupby("k")["x"].mean()),
           ("sum(x)", lambda f: f.sum("x"), lambda d: d["x"].sum())]


def best_of(trials, fn):
    best, out = float("inf"), None
    for _ in range(trials):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    from kodiak import ds_agg
    ds_agg._cache = False  # every batch folded each time
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=4e6)
    p.add_argument("--batch-rows", type=int, default=1_000_000)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--limit", type=float, default=8e6)
    p.add_argument("--trials", type=int, default=7)
    args = p.parse_args()
    n, limit = int(args.rows), int(args.limit)
    rng = np.random.default_rng(14)
    df = pd.DataFrame({"x": rng.normal(0, 1, n), "k": rng.integers(0, 200, n)})
    print(f"# ds_agg_gather_bench: {n} rows, batches of {args.batch_rows}, {args.ranks} "
          f"rank(s), 1 famd (shm); B's --memory-limit {limit} bytes per rank; best of "
          f"{args.trials}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    fam = FamServers(1, pool_size=f"{max(1, n * 16 * 2 // (1 << 30) + 1)}G")
    servers = []
    try:
        env = {"FAM_SERVERS": fam.servers}
        a = Server(args.ranks, env=env)
        servers.append(a)
        b = Server(args.ranks, args=["--memory-limit", str(limit)], env=env)
        servers.append(b)
        ak.connect(connect_file=a.connect_file)
        s = ak.DatasetStore("gatherbench")
        for at in range(0, n, 1 << 22):
            t = s.ingest("T", df.iloc[at:at + (1 << 22)], batch_rows=args.batch_rows,
                         progress=False)
        names = [t.filter("x", "gt", v).name for _, v in FILTERS]
        res = {}
        for label, srv in (("A", a), ("B", b)):
            ak.disconnect()
            ak.connect(connect_file=srv.connect_file)
            st = ak.DatasetStore("gatherbench", create=False)
            for (fl, _), name in zip(FILTERS, names):
                for q, fn, _ in QUERIES:
                    try:
                        res[label, fl, q] = best_of(args.trials, lambda: fn(st[name]))
                    except MemoryError:
                        res[label, fl, q] = (None, None)
        ak.disconnect()
        print(f"{'filter':<16}{'query':<20}{'pandas':>9}{'kodiak A':>10}{'A/pandas':>9}"
              f"{'B (limit)':>13}{'B/A':>6}   (ratios: speed, >1 = faster)")
        for fl, v in FILTERS:
            sel = df[df.x > v]
            for q, _, pq in QUERIES:
                tp, exp = best_of(args.trials, lambda: pq(sel))
                ta, got = res["A", fl, q]
                tb, gotb = res["B", fl, q]
                for g in (got, gotb):
                    if g is not None:
                        np.testing.assert_allclose(np.asarray(g, dtype=float),
                                                   np.asarray(exp, dtype=float), rtol=1e-9)
                bcol = f"{tb:>12.3f}s{ta / tb:>6.2f}" if tb else f"{'MemoryError':>13}"
                print(f"{fl:<16}{q:<20}{tp:>8.3f}s{ta:>9.3f}s{tp / ta:>9.2f}{bcol}", flush=True)
        print(f"# load average at end {os.getloadavg()[0]:.2f}")
    finally:
        try:
            ak.disconnect()
        except Exception:
            pass
        for x in servers:
            x.stop()
        fam.stop()


if __name__ == "__main__":
    main()
