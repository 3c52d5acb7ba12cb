#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ds_update_bench.py — the update after one new batch of ten (issue 14):
ds_bench's queries (filter fare > 50 -> derive duration -> mean duration
per pickup zone) on a dataset of ten batches, one more batch ingested, the
queries again; timed with kodiakd's kept per-batch aggregation results
(the default) and without them (ds_agg's cache: false; the filter and the
derived column are brought current incrementally either way), beside the
same queries from scratch on a dataset of all eleven batches, in the same
run. Also the group-by alone just after the update, both ways, and the
update as the issue's workflow asks for it (the filtered dataset kept from
before the ingest, its group-by asked again: one request).

The files are ds_bench's (the shipped taxi sample repeated, a month per
file, one batch per file); 2 famd, kodiakd with --ranks ranks.

  /usr/bin/python3 bench/ds_update_bench.py [--rows 2e6] [--ranks 2] [--trials 3]
                                            [--env K=V ...] [--trace] [--others N]

--env K=V adds to kodiakd's environment (e.g. KD_DSD_SIMD=0); --trace
prints, for every "kept" update, each client call's command and wall time,
then one timeline of the client's calls and every rank's phases
(KD_DSD_TRACE=1; all on the machine's monotonic clock): where an update's
fixed costs go. $FAMD_ARGS adds to famd's command line (--spin-us 20).

Not part of `make test`."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ds_bench as B  # noqa: E402  (sets up the paths and KODIAK_BUILD)

import kodiak as ak  # noqa: E402
from kodiak import ds_agg  # noqa: E402
from fam_fixtures import FamServers, start_kodiakd  # noqa: E402


def timeline(calls, output):
    """The client's calls and kodiakd's phases (each trace line ends in
    "@<CLOCK_MONOTONIC seconds>", the clock of Python's perf_counter) in
    the order they happened: ms since the first call, ms since the line
    before, what."""
    ev = []
    for cmd, t0, t1, _ in calls:
        ev += [(t0, f"client sends {cmd}"), (t1, f"client has the reply to {cmd}")]
    for ln in output.splitlines():
        if ln.startswith("dsd ") and " @" in ln:
            what, _, at = ln.rpartition(" @")
            ev.append((float(at), what[4:]))
    ev.sort()
    prev = ev[0][0] if ev else 0
    for t, what in ev:
        print(f"    {(t - ev[0][0]) * 1e3:8.3f} {(t - prev) * 1e3:+7.3f}  {what}")
        prev = t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=2e6)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--trace", action="store_true")
    p.add_argument("--others", type=int, default=0,
                   help="datasets of one file each, with the queries' derived datasets, "
                        "made first: a store the size of ds_bench's (some 30)")
    args = p.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.trace:
        env["KD_DSD_TRACE"] = "1"
    from kodiak import client
    calls = []
    plain = client.generic_msg

    def timed(cmd, *a, **k):
        t0 = time.perf_counter()
        out = None
        try:
            out = plain(cmd, *a, **k)
            return out
        finally:
            size = len(json.dumps(out[0])) if out else 0
            calls.append((cmd, t0, time.perf_counter(), size))
    if args.trace:
        client.generic_msg = timed
    tmp = tempfile.mkdtemp(prefix="kodiak-upd-")
    paths, n = B.make_files(tmp, int(args.rows))
    kw = {"usecols": B.PIPE_COLS, "parse_dates": B.DATES}
    print(f"# ds_update_bench: {n} rows in {len(paths)} files (10 + 1 used), {args.ranks} "
          f"rank(s); best of {args.trials}; load average at start {os.getloadavg()[0]:.2f}")
    import pandas as pd
    ref = B.pandas_queries(pd.concat([pd.read_csv(x, **kw) for x in paths[:11]],
                                     ignore_index=True))
    famd = FamServers(2, pool_size="2G", args=os.environ.get("FAMD_ARGS", "").split())
    srv = start_kodiakd(args.ranks, famd.servers, env=env)
    times = {k: [] for k in ("kept", "folded", "full", "agg kept", "agg folded", "workflow")}
    try:
        ak.connect(connect_file=srv.connect_file)
        store = ak.DatasetStore("bench_update")
        for k in range(args.others):
            B.kodiak_queries(store.ingest(f"O{k}", paths[:1], batch_rows=1 << 20, **kw))
        for trial in range(args.trials):
            for how in ("kept", "folded"):
                ds_agg._cache = how == "kept"
                t = store.ingest(f"U{trial}{how}", paths[:10], batch_rows=1 << 20, **kw)
                B.kodiak_queries(t)
                store.ingest(t.name, paths[10:11], batch_rows=1 << 20, **kw)
                seen = len(srv.output())
                calls.clear()
                t0 = time.perf_counter()
                got = B.kodiak_queries(t)
                times[how].append(time.perf_counter() - t0)
                if args.trace and how == "kept":
                    print(f"## trial {trial}: the update took "
                          f"{times[how][-1] * 1e3:.1f} ms; client calls: " +
                          ", ".join(f"{c} {(e - b) * 1e3:.1f} ms ({n} B)"
                                    for c, b, e, n in calls))
                    timeline(calls, srv.output()[seen:])
                B.check(got, ref, f"the update ({how})")
                big = t.filter("fare_amount", "gt", B.PIPE_FARE)
                t0 = time.perf_counter()
                big.groupby("pickup_location_id").mean("duration")
                times["agg " + how].append(time.perf_counter() - t0)
            # as the workflow: `big` kept from before the ingest, its
            # group-by asked again (one request: ds_agg brings it current)
            ds_agg._cache = True
            t = store.ingest(f"W{trial}", paths[:10], batch_rows=1 << 20, **kw)
            B.kodiak_queries(t)
            big = t.filter("fare_amount", "gt", B.PIPE_FARE)
            store.ingest(t.name, paths[10:11], batch_rows=1 << 20, **kw)
            seen = len(srv.output())
            calls.clear()
            t0 = time.perf_counter()
            got = big.groupby("pickup_location_id").mean("duration")
            times["workflow"].append(time.perf_counter() - t0)
            if args.trace:
                print(f"## trial {trial}: the workflow's update took "
                      f"{times['workflow'][-1] * 1e3:.1f} ms")
                timeline(calls, srv.output()[seen:])
            B.check(got, ref, "the workflow's update")
            f = store.ingest(f"F{trial}", paths[:11], batch_rows=1 << 20, **kw)
            seen = len(srv.output())
            calls.clear()
            t0 = time.perf_counter()
            full = B.kodiak_queries(f)
            times["full"].append(time.perf_counter() - t0)
            if args.trace and trial == args.trials - 1:
                print(f"## the last trial's queries from scratch took "
                      f"{times['full'][-1] * 1e3:.1f} ms")
                timeline(calls, srv.output()[seen:])
            B.check(full, ref, "from scratch")
        store.destroy()
    finally:
        ak.disconnect()
        srv.stop()
        famd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    full = min(times["full"])
    print(f"{'what':<44}{'time':>8}   vs full recompute (same run)")
    for k, label in (("full", "queries from scratch, 11 batches"),
                     ("kept", "update: 1 new batch, partials kept"),
                     ("folded", "update: 1 new batch, every batch folded"),
                     ("workflow", "update: big.groupby(..) again (one request)"),
                     ("agg kept", "  its group-by alone, partials kept"),
                     ("agg folded", "  its group-by alone, every batch folded")):
        print(f"{label:<44}{min(times[k]):>7.3f}s   {min(times[k]) / full:.2f}")
    print(f"# load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
