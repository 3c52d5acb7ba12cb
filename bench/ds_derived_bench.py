#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ds_derived_bench.py — derived datasets (issue 14): the filter -> gather ->
derive queries on already ingested data beside pandas on an in-memory
DataFrame, and the update after one new batch of ten beside a full
recompute, in the same run.

Data: --rows rows of random taxi-like columns (fare float64, pickup and
dropoff int64 seconds, zone int64), ingested as 10 batches into a store on
one famd; then one more batch of --rows/10 rows.

  - queries: filter fare > 50, gather pickup and dropoff, derive duration
    = dropoff - pickup, read duration: kodiak from scratch (a fresh store
    dataset each trial) beside pandas df[df.fare > 50] and the subtraction;
  - update: after the 11th batch, reading duration again (everything
    derived brought current: 1 batch each) beside the same queries from
    scratch on all 11 batches (full recompute).

Each figure is the best of --trials wall times.

  /usr/bin/python3 bench/ds_derived_bench.py [--rows 1e6] [--ranks 2] [--trials 2]

Not part of `make test`."""
import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))
os.environ.setdefault("KODIAK_BUILD", os.path.join(REPO, "build"))
import kodiak as ak  # noqa: E402
from fam_fixtures import FamServers, start_kodiakd  # noqa: E402


def frame(n, seed):
    rng = np.random.default_rng(seed)
    pick = rng.integers(1_483_228_800, 1_514_764_800, n)
    return pd.DataFrame({"fare": rng.exponential(20, n).round(2), "pickup": pick,
                         "dropoff": pick + rng.integers(60, 7200, n),
                         "zone": rng.integers(1, 264, n)})


def queries(t):
    big = t.filter("fare", "gt", 50)
    big.derive("duration", big.col("dropoff") - big.col("pickup"))
    return big["duration"]


def best(fn, trials):
    out = None
    for _ in range(trials):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        out = dt if out is None else min(out, dt)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=float, default=1e6)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--trials", type=int, default=2)
    a = ap.parse_args()
    n = int(a.rows)
    df, extra = frame(n, 1), frame(n // 10, 2)
    # every trial keeps its datasets: three bases of about 35 bytes a row
    # (queries, update, full recompute) and what is derived from them
    fam = FamServers(1, pool_size=f"{max(2, -(-n * 130 * a.trials // 2**30))}G")
    srv = None
    try:
        srv = start_kodiakd(a.ranks, fam.servers)
        ak.connect(connect_file=srv.connect_file)
        st = ak.DatasetStore("bench_derived")
        cols = {k: df[k].values for k in df.columns}
        k = [0]

        def scratch(data):
            k[0] += 1
            t = st.ingest(f"T{k[0]}", data, batch_rows=-(-n // 10))
            t0 = time.perf_counter()
            queries(t)
            return time.perf_counter() - t0

        q_kodiak = min(scratch(cols) for _ in range(a.trials))
        q_pandas = best(lambda: (df[df.fare > 50].dropoff - df[df.fare > 50].pickup).values,
                        a.trials)
        # update after one new batch of ten, beside a full recompute
        ups = []
        for _ in range(a.trials):
            k[0] += 1
            t = st.ingest(f"U{k[0]}", cols, batch_rows=-(-n // 10))
            queries(t)
            st.ingest(t.name, {c: extra[c].values for c in extra.columns},
                      batch_rows=len(extra))
            t0 = time.perf_counter()
            d = t.filter("fare", "gt", 50)["duration"]
            ups.append(time.perf_counter() - t0)
            assert d.size == int((pd.concat([df, extra]).fare > 50).sum())
        both = {c: np.concatenate([df[c].values, extra[c].values]) for c in df.columns}
        full = min(scratch(both) for _ in range(a.trials))
        up = min(ups)
        load = os.getloadavg()[0]
        print(f"ds_derived_bench: {n} rows in 10 batches, {a.ranks} ranks, 1 famd, "
              f"load average {load:.1f}")
        print(f"{'what':44} {'seconds':>9} {'baseline':>9} {'ratio':>7}")
        print(f"{'queries (filter+gather+derive) vs pandas':44} {q_kodiak:9.3f} "
              f"{q_pandas:9.3f} {q_pandas / q_kodiak:7.2f}x")
        print(f"{'update after 1 new batch vs full recompute':44} {up:9.3f} "
              f"{full:9.3f} {up / full:7.2f} of it")
        st.destroy()
    finally:
        ak.disconnect()
        if srv:
            srv.stop()
        fam.stop()


if __name__ == "__main__":
    main()
