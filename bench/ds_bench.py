#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ds_bench.py — DatasetStore.ingest of CSV files into FAM beside
pandas.read_csv and dask.dataframe.read_csv of the same files, in the same
run, in rows/s.

The files are the shipped taxi sample (data/taxi: 120,000 rows, 10,000 per
month of 2017, 18 columns), one file per month, each month's rows repeated
until the files hold --rows rows together (default 1e7: 12 files of about
833,000 rows), written first to a temporary directory. The three readers
then read the same files, in the same order, in this run:

  - pandas.read_csv of each file, then pandas.concat (one core);
  - dask.dataframe.read_csv of all the files, .compute() (dask's default
    threaded scheduler on this machine's cores);
  - kodiak: 2 famd (volatile pools) and kodiakd at each --ranks count; one
    store.ingest("Trip", files, batch_rows=--batch-rows) per trial into a
    fresh dataset: every rank parses its byte range of each file and writes
    its rows into the batches' FAM arrays, one commit at the end.

Each figure is the best of --trials wall times (the files are in the page
cache after the first read, for every reader). The first kodiak dataset's
columns in CHECK (and the dates with --parse-dates) are then compared with
pandas' result (a spot check, outside the timings). Beside each wall time
the CPU seconds (user + sys) of that trial: pandas' and dask's of this
process, kodiak's of its ranks (famd's, the memory servers', apart): on a
shared machine they say more than the wall times.

  /usr/bin/python3 bench/ds_bench.py [--rows 1e7] [--ranks 2] [--trials 2]
                                     [--batch-rows 1048576] [--parse-dates]
                                     [--provider shm|tcp] [--skip-dask]
                                     [--update-trials 5]

Then (unless --skip-pipeline) the derived-dataset pipeline of issue 14 on
the same files: ingest -> filter (fare > 50) -> gather the times -> derive
duration -> mean duration per pickup zone, beside pandas and dask; the
queries alone on ingested data beside pandas on an in-memory DataFrame;
the update after one new batch of ten (a file per batch) beside the same
queries from scratch on all eleven (best of --update-trials, default 5:
they take milliseconds; the results must be equal), two ways: as the
issue's workflow (the filtered dataset `big` kept from before the ingest,
its group-by asked again: one request, which brings it current first) and
with the queries' code run again from the filter (three requests); the queries alone again from a second
kodiakd (same ranks, same famd) whose --memory-limit per rank is a quarter
of the pipeline dataset's bytes over the ranks (the dataset is 4x what all
its ranks may hold: the batches pass through its bounded window), beside
a third started alike without a limit (both on datasets they have not
opened yet, trials alternating between them); its answers must equal the
first server's and pandas'.

--parse-dates: every reader turns pickup_datetime and dropoff_datetime into
date-times. $FAMD_ARGS adds to famd's command line (--spin-us 200), and the
ranks take $FAM_SPIN_US from the environment. Not part of `make test`."""
import argparse
import gc
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))
os.environ.setdefault("KODIAK_BUILD", os.path.join(REPO, "build"))
import kodiak as ak  # noqa: E402
from fam_fixtures import FamServers, start_kodiakd  # noqa: E402

SAMPLE = os.path.join(REPO, "data", "taxi", "yellow_tripdata_2017_sample.csv.gz")
DATES = ["pickup_datetime", "dropoff_datetime"]


def make_files(tmp, rows):
    """One file per month of the sample, its rows repeated: `rows` in all."""
    with gzip.open(SAMPLE, "rb") as f:
        header = f.readline()
        lines = f.read().splitlines(keepends=True)
    months = {}
    for ln in lines:
        months.setdefault(ln.split(b",", 2)[1][:7], []).append(ln)
    keys = sorted(months)
    paths, done = [], 0
    for k, m in enumerate(keys):
        want = rows * (k + 1) // len(keys) - done
        p = os.path.join(tmp, f"yellow_{m.decode()}.csv")
        with open(p, "wb") as out:
            out.write(header)
            left = want
            while left > 0:
                take = months[m][:left]
                out.write(b"".join(take))
                left -= len(take)
        paths.append(p)
        done += want
    return paths, done


CHECK = ["passenger_count", "trip_distance", "store_and_fwd_flag", "total_amount",
         "congestion_surcharge"]


def spot_check(ds, ref):
    """The ingested dataset's columns CHECK (and the dates) equal pandas'
    result of the same files: a fast reader must also be a right one."""
    import numpy as np
    for c, want in ref.items():
        got = ds[c].to_ndarray()
        if c in DATES:
            want = want.values.astype("datetime64[s]").astype(np.int64)
        elif want.dtype == object:
            got, want = got.astype(str), want.values.astype(str)  # NaN: "nan" in both
        else:
            assert got.dtype == want.dtype, (c, got.dtype, want.dtype)
            want = want.values
        assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), c
    print(f"    spot check: {', '.join(ref)} equal pandas' ({len(ds)} rows)", flush=True)


def best_of(trials, fn, cpu=time.process_time):
    """The best wall time of `trials` calls, and the CPU seconds (`cpu()`
    before and after) of that call: on a shared machine the CPU time is the
    steadier figure."""
    best, best_cpu = float("inf"), 0.0
    for i in range(trials):
        gc.collect()
        c0, t0 = cpu(), time.perf_counter()
        out = fn(i)
        t, c = time.perf_counter() - t0, cpu() - c0
        if t < best:
            best, best_cpu = t, c
        del out
    return best, best_cpu


def proc_cpu(pids):
    """user + sys seconds of processes pids so far (/proc/pid/stat)."""
    tot = 0.0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tot += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return tot


def steps(log, trials):
    """Rank 0's time in each step of the ingests (KODIAK_DS_TIMES lines),
    per trial."""
    tot = {}
    for line in log.splitlines():
        if not line.startswith("ingest rank 0:"):
            continue
        for part in line.split(":", 1)[1].split(","):
            name, secs = part.strip().rsplit(" ", 2)[0], float(part.strip().split()[-2])
            tot[name] = tot.get(name, 0.0) + secs
    if tot:
        print("    rank 0, per ingest: " + ", ".join(f"{k} {v / trials:.2f} s"
                                                  for k, v in tot.items()), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=1e7)
    p.add_argument("--ranks", default="2")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--update-trials", type=int, default=5)
    p.add_argument("--batch-rows", type=int, default=1 << 20)
    p.add_argument("--parse-dates", action="store_true")
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--skip-pipeline", action="store_true")
    p.add_argument("--provider", default="shm", choices=["shm", "tcp"],
                   help="libfabric provider between kodiakd and famd")
    args = p.parse_args()
    import pandas as pd
    tmp = tempfile.mkdtemp(prefix="kodiak-dsbench-")
    try:
        paths, n = make_files(tmp, int(args.rows))
        size = sum(os.path.getsize(x) for x in paths)
        kw = {"parse_dates": DATES} if args.parse_dates else {}
        print(f"# ds_bench: {n} rows, 18 columns, {len(paths)} files, {size / 1e6:.0f} MB "
              f"(taxi sample repeated, a month per file){', parse_dates' if kw else ''}; "
              f"best of {args.trials}; load average at start {os.getloadavg()[0]:.2f}",
              flush=True)
        print(f"{'reader':<40}{'time':>9}{'rows/s':>12}{'MB/s':>9}   vs pandas (same run)"
              f"   cpu s (user+sys)")
        ref = {}

        def pandas_read(i):
            df = pd.concat([pd.read_csv(x, **kw) for x in paths], ignore_index=True)
            if i == 0:  # the columns the kodiak results are checked against
                ref.update({c: df[c].copy() for c in CHECK + (DATES if kw else [])})
            return df
        tp, cp = best_of(args.trials, pandas_read)
        print(f"{'pandas.read_csv + concat':<40}{tp:>8.2f}s{n / tp / 1e6:>10.2f} M"
              f"{size / tp / 1e6:>9.0f}   1.00   {cp:6.2f} (this process)", flush=True)
        if not args.skip_dask:
            import dask.dataframe as dd
            td, cd = best_of(args.trials, lambda i: dd.read_csv(paths, **kw).compute())
            print(f"{'dask.dataframe.read_csv (threads)':<40}{td:>8.2f}s{n / td / 1e6:>10.2f} M"
                  f"{size / td / 1e6:>9.0f}   {tp / td:.2f}   {cd:6.2f} (this process)",
                  flush=True)
        # each trial keeps its dataset: pools for all of them (2 famd); the
        # pipeline keeps 6 datasets of 4 columns per trial (P, Q, two for
        # the 4x --memory-limit row, U and F), with what is derived from them
        need = max(args.trials * n * 18 * 8, 0 if args.skip_pipeline else
                   6 * args.trials * n * len(PIPE_COLS) * 8)
        gib = max(1, int(need * 1.3 / 2 / (1 << 30)) + 1)
        for r in [int(x) for x in args.ranks.split(",")]:
            famd = FamServers(2, pool_size=f"{gib}G", provider=args.provider,
                              args=os.environ.get("FAMD_ARGS", "").split())
            try:
                srv = start_kodiakd(r, famd.servers, provider=args.provider,
                                    env={"KODIAK_DS_TIMES": "1"})
                try:
                    ak.connect(connect_file=srv.connect_file)
                    store = ak.DatasetStore("bench")

                    def ingest(i):
                        name = f"Trip{i}"
                        t = store.ingest(name, paths, batch_rows=args.batch_rows, **kw)
                        assert len(t) == n, (len(t), n)
                        return t
                    ranks = subprocess.check_output(
                        ["pgrep", "-s", str(srv.proc.pid), "-x", "kodiakd"]).decode().split()
                    famds = [x.pid for x in famd.procs]
                    f0 = proc_cpu(famds)
                    t, cr = best_of(args.trials, ingest, lambda: proc_cpu(ranks))
                    cf = (proc_cpu(famds) - f0) / args.trials
                    nb = store["Trip0"].num_batches
                    label = f"kodiak ingest, {r} rank(s), {nb} batches, {args.provider}"
                    print(f"{label:<40}{t:>8.2f}s{n / t / 1e6:>10.2f} M{size / t / 1e6:>9.0f}"
                          f"   {tp / t:.2f}   {cr:6.2f} (ranks; pandas'/ranks' {cp / cr:.2f}; "
                          f"famd {cf:.2f})", flush=True)
                    spot_check(store["Trip0"], ref)
                    store.destroy()
                    if not args.skip_pipeline:
                        store = ak.DatasetStore("bench_pipe")
                        pipeline(args, paths, n, store, famd, r, srv)
                        store.destroy()
                    steps(srv.output(), args.trials)
                finally:
                    ak.disconnect()
                    srv.stop()
            finally:
                famd.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- derived datasets (issue 14): the pipeline and the queries alone ---------------------

PIPE_COLS = ["pickup_datetime", "dropoff_datetime", "pickup_location_id", "fare_amount"]
PIPE_FARE = 50  # fare_amount > 50 (about 3% of the sample's trips)


def pandas_queries(df):
    """filter -> gather -> derive -> group-by on a DataFrame."""
    big = df[df.fare_amount > PIPE_FARE]
    dur = (big.dropoff_datetime - big.pickup_datetime).dt.total_seconds().astype("int64")
    return dur.groupby(big.pickup_location_id).mean()


def kodiak_queries(t):
    """The same on a kodiak dataset: a filter index dataset, the times read
    through it by the derive, a derived column, a group-by computed batch
    by batch by the server (ds.groupby: the key gathered through the index
    a batch at a time, no column materialised), a pandas Series."""
    big = t.filter("fare_amount", "gt", PIPE_FARE)
    if "duration" not in big.columns:
        big.derive("duration", big.col("dropoff_datetime") - big.col("pickup_datetime"))
    return big.groupby("pickup_location_id").mean("duration")


def pipeline(args, paths, n, store, famd, ranks, srv):
    """Rows: the whole pipeline (ingest -> filter -> gather -> derive ->
    group-by) beside pandas and dask, and the queries alone beside pandas
    on an in-memory DataFrame, and at 4x --memory-limit (a second kodiakd
    on famd) beside in memory (srv); results checked against pandas'."""
    import pandas as pd
    kw = {"usecols": PIPE_COLS, "parse_dates": DATES}

    def pd_pipe(i):
        df = pd.concat([pd.read_csv(x, **kw) for x in paths], ignore_index=True)
        return pandas_queries(df)
    tp, cp = best_of(args.trials, pd_pipe)
    ref = pd_pipe(0)
    print(f"{'pipeline: pandas':<40}{tp:>8.2f}s{'':>21}   1.00   {cp:6.2f}", flush=True)
    if not args.skip_dask:
        import dask.dataframe as dd

        def dask_pipe(i):
            df = dd.read_csv(paths, **kw)
            big = df[df.fare_amount > PIPE_FARE]
            dur = (big.dropoff_datetime - big.pickup_datetime).dt.total_seconds().astype("int64")
            return dur.groupby(big.pickup_location_id).mean().compute()
        td, cd = best_of(args.trials, dask_pipe)
        print(f"{'pipeline: dask (threads)':<40}{td:>8.2f}s{'':>21}   {tp / td:.2f}   {cd:6.2f}",
              flush=True)

    def ak_pipe(i):
        t = store.ingest(f"P{i}", paths, batch_rows=args.batch_rows, **kw)
        return kodiak_queries(t)
    tk, _ = best_of(args.trials, ak_pipe)
    check(kodiak_queries(store["P0"]), ref)
    print(f"{'pipeline: kodiak':<40}{tk:>8.2f}s{'':>21}   {tp / tk:.2f}"
          f"{'   ' + format(td / tk, '.2f') + 'x dask' if not args.skip_dask else ''}",
          flush=True)
    # the queries alone: kodiak on already ingested data, pandas in memory
    df = pd.concat([pd.read_csv(x, **kw) for x in paths], ignore_index=True)
    tq, cq = best_of(args.trials, lambda i: pandas_queries(df))
    print(f"{'queries: pandas (in memory)':<40}{tq:>8.2f}s{'':>21}   1.00   {cq:6.2f}",
          flush=True)
    k = [0]

    def fresh(i):  # a fresh dataset each trial (its derived items made anew)
        k[0] += 1
        return store.ingest(f"Q{k[0]}", paths, batch_rows=args.batch_rows, **kw)
    tds = [fresh(i) for i in range(args.trials)]
    tk2, _ = best_of(args.trials, lambda i: kodiak_queries(tds[i]))
    print(f"{'queries: kodiak (ingested)':<40}{tk2:>8.2f}s{'':>21}   {tq / tk2:.2f}", flush=True)
    df = None  # free it before the update runs
    mem = kodiak_queries(tds[0])  # the in-memory server's answer (its derived items kept)
    check(mem, ref, "queries (in memory)")
    four_x(args, store, [fresh(i) for i in range(2 * args.trials)], famd, ranks, srv, tk2, tq,
           mem, ref)
    # the update after one new batch of ten (a file is a batch here) beside
    # the same queries from scratch on all eleven
    # (best of --update-trials: a few ms each, where this machine's noise
    # is a millisecond or two; each trial's datasets are dropped after it)
    if len(paths) >= 11:
        ups, wfs, fulls = [], [], []
        for i in range(args.update_trials):
            # as the workflow: `big` kept from before the ingest,
            # its group-by asked again (ds_agg brings it current first)
            k[0] += 1
            w = store.ingest(f"W{k[0]}", paths[:10], batch_rows=args.batch_rows, **kw)
            kodiak_queries(w)
            big = w.filter("fare_amount", "gt", PIPE_FARE)
            store.ingest(w.name, paths[10:11], batch_rows=args.batch_rows, **kw)
            t0 = time.perf_counter()
            wgot = big.groupby("pickup_location_id").mean("duration")
            wfs.append(time.perf_counter() - t0)
            # the queries' code run again from the filter
            k[0] += 1
            t = store.ingest(f"U{k[0]}", paths[:10], batch_rows=args.batch_rows, **kw)
            kodiak_queries(t)
            store.ingest(t.name, paths[10:11], batch_rows=args.batch_rows, **kw)
            t0 = time.perf_counter()
            got = kodiak_queries(t)
            ups.append(time.perf_counter() - t0)
            k[0] += 1
            f = store.ingest(f"F{k[0]}", paths[:11], batch_rows=args.batch_rows, **kw)
            t0 = time.perf_counter()
            want = kodiak_queries(f)
            fulls.append(time.perf_counter() - t0)
            pd.testing.assert_series_equal(got, want)
            pd.testing.assert_series_equal(wgot, want)
            for d in (w, t, f):
                store.drop(d.name)
        up, wf, full = min(ups), min(wfs), min(fulls)
        print(f"{'update: big.groupby(..) again (kodiak)':<40}{wf * 1e3:>7.1f}ms{'':>21}   "
              f"{wf / full:.2f} of a full recompute", flush=True)
        print(f"{'update: the queries run again (kodiak)':<40}{up * 1e3:>7.1f}ms{'':>21}   "
              f"{up / full:.2f} of a full recompute ({full * 1e3:.1f} ms; best of "
              f"{args.update_trials}; both updates' results are the recompute's)", flush=True)


def four_x(args, store, tds, famd, ranks, srv, tmem, tq, mem, ref):
    """The queries alone from two more kodiakd of `ranks` ranks on famd,
    started alike: one whose ranks together may hold a quarter of a
    dataset (--memory-limit), one without a limit. Neither has opened the
    datasets `tds` (2 x trials, ingested by `srv`, nothing derived yet):
    trial i runs the limited one on tds[2i] and the other on tds[2i + 1]
    (alternating, so a change of load hits both), best of the trials each.
    The limited one's answer must equal the in-memory servers' (`mem`:
    srv's) and pandas' `ref`. `tmem`: srv's time on the datasets it had
    just ingested (the "queries: kodiak (ingested)" row). Reconnects to
    `srv` before returning."""
    import numpy as np
    nbytes = len(tds[0]) * 8 * len(PIPE_COLS)  # int64, float64 and datetime64[s] columns
    limit = max(1 << 20, nbytes // 4 // ranks)
    servers = []
    try:
        small = start_kodiakd(ranks, famd.servers, provider=args.provider,
                              args=["--memory-limit", str(limit)])
        servers.append(small)
        big = start_kodiakd(ranks, famd.servers, provider=args.provider)
        servers.append(big)
        names = [t.name for t in tds]

        def on(server):
            ak.disconnect()
            ak.connect(connect_file=server.connect_file)
            return ak.DatasetStore(store.name, create=False)
        times, got = {small: [], big: []}, {}
        on_s = on(small)
        try:  # the limit is real: half the dataset's columns do not fit
            on_s[names[-1]][["pickup_datetime", "fare_amount"]]
            raise AssertionError("the limited kodiakd materialised two whole columns")
        except MemoryError:
            pass
        for i in range(args.trials):
            for server, name in ((small, names[2 * i]), (big, names[2 * i + 1])):
                on_x = on(server)
                gc.collect()
                t0 = time.perf_counter()
                res = kodiak_queries(on_x[name])
                times[server].append(time.perf_counter() - t0)
                got.setdefault(server, res)
        for server in servers:
            assert server.alive(), server.output()[-3000:]
    finally:
        ak.disconnect()
        for server in servers:
            server.stop()
        ak.connect(connect_file=srv.connect_file)
    for server, what in ((big, "queries (a second server, in memory)"),
                         (small, "queries at 4x --memory-limit")):
        g = got[server]
        exact = g.index.equals(mem.index) and np.array_equal(g.values, mem.values)
        assert exact or (g.index.equals(mem.index) and
                         np.allclose(g.values, mem.values, rtol=1e-12)), (g, mem)
        check(g, ref, what)
        print(f"    ... and {'is exactly' if exact else 'within 1e-12 of'} the first server's",
              flush=True)
    tb, tc = min(times[small]), min(times[big])
    print(f"{'queries: kodiak, a fresh server':<40}{tc:>8.2f}s{'':>21}   {tq / tc:.2f}"
          f"   (its first look at the dataset; the ingesting server: {tmem:.2f}s)", flush=True)
    print(f"{'queries: kodiak at 4x --memory-limit':<40}{tb:>8.2f}s{'':>21}   {tq / tb:.2f}"
          f"   {tc / tb:.2f} of the in-memory throughput (target >= 0.5; "
          f"{nbytes / 1e6:.0f} MB dataset, --memory-limit {limit / 1e6:.1f} MB x {ranks})",
          flush=True)


def check(got, ref, what="pipeline result"):
    """kodiak's group-by means against pandas'."""
    import numpy as np
    got = got.sort_index() if hasattr(got, "sort_index") else got
    g = np.asarray(got).ravel().astype(float)
    r = ref.sort_index().values.astype(float)
    assert len(g) == len(r) and np.allclose(g, r, rtol=1e-9), (got, ref)
    if hasattr(got, "index"):
        assert np.array_equal(np.asarray(got.index), np.asarray(ref.sort_index().index))
    print(f"    {what} equals pandas' ({len(r)} zones)", flush=True)


if __name__ == "__main__":
    main()
